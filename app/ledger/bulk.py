"""Many household credits in one transaction, written with one statement per table.

The set-based twin of `service.award` for a batch of approvals (an integration batch): every
account is locked up front in one pass (`lock_households`, in id order, as `service.lock` does);
a `Journal` then chains the transfers in memory, in the order they are made, from the locked
balances, sequence numbers and chain heads, and `Journal.write` appends all the entries, lots and
lot uses and moves every account with one statement each. The entries, hashes, lots and
clawback withholdings are those `service.award` would have written one by one, but for the
issuance side: one shard pays the whole batch (`lock_households`), where one by one each
household's own shard would. `verify()` checks the chains the same way. Nothing here commits.
"""
from flask import current_app
from sqlalchemy import select

from ..columns import new_id, utcnow
from ..dialect import insert_rows, is_in, update_rows
from ..errors import Conflict, InsufficientPoints
from ..extensions import db
from ..rows import set_loaded
from .kinds import EntryKind, totals_delta
from .models import GENESIS, SYSTEM_KINDS, LedgerAccount, LedgerEntry, LotUse, PointLot
from .service import LOCKED, _add_months, account_id, chain_hash, issuance_party, mark_locked

WITHHELD = "Withheld against an earlier reversal"  # the reason service.award gives a withholding
_MOVED = ("balance", "seq", "head_hash", "clawback", "earned", "redeemed")  # what writing moves on an account


def lock_households(household_ids, issuance_key: str) -> None:
    """Create or lock these households' wallets and the batch's issuance shard (picked by
    `issuance_key`), all in one statement in id order, as `service.lock` does one upsert row at a time
    (so no two transactions wait for each other in a circle, and no account is created one by one).

    One shard pays the whole batch, not each household's own: issuance is one account kept in shards,
    and a batch naming hundreds of households would otherwise lock every shard, so that no two
    batches could run side by side. Does not commit."""
    if not household_ids:
        return
    parties = sorted({(account_id(*p), p) for p in _batch_parties(household_ids, issuance_key)})
    if db.session.info.get(LOCKED, set()).issuperset(key for key, _ in parties):
        return  # locked earlier in this transaction (an import's chunk after another)
    now = utcnow()
    insert_rows(LedgerAccount.__table__, [
        {"id": key, "kind": party[0], "owner_id": party[1], "shard": party[2] if len(party) > 2 else 0,
         "balance": 0, "clawback": 0, "seq": 0, "head_hash": GENESIS, "earned": 0, "redeemed": 0,
         "created_at": now}
        for key, party in parties
    ], lock_conflicts_on=["id"])
    mark_locked(key for key, _ in parties)


def _batch_parties(household_ids, issuance_key: str) -> list[tuple]:
    return [("household", h) for h in set(household_ids)] + [issuance_party(issuance_key)]


class Journal:
    """Transfers between accounts this transaction has locked, chained in memory until `write`."""

    def __init__(self, household_ids, issuance_key: str, others=()):
        """Read the accounts of these households (wallets), the batch's issuance shard and `others`
        (account ids), all locked by this transaction (`lock_households` with the same `issuance_key`),
        and the open lots of wallets with a clawback to withhold."""
        self._issuance = account_id(*issuance_party(issuance_key))
        self._expiry_months = current_app.config["POINTS_EXPIRY_MONTHS"]
        self._state: dict[str, dict] = {}  # account id → balance, seq, head_hash, clawback, totals as they move
        self._entries, self._lots, self._lot_uses = [], [], []
        self._open_lots: dict[str, list[dict]] = {}  # wallets that may be debited (withholding) → open lots
        self._lot_start: dict[str, int] = {}  # existing lot id → remaining when read
        keys = {account_id(*party) for party in _batch_parties(household_ids, issuance_key)} | set(others)
        held = db.session.info.get(LOCKED, set())
        assert held.issuperset(keys), "ledger accounts read for writing without their lock"
        for account in db.session.scalars(select(LedgerAccount).where(is_in(LedgerAccount.id, keys))
                                          .execution_options(populate_existing=True)):
            self._state[account.id] = {"object": account, "kind": account.kind, "balance": account.balance,
                                       "seq": account.seq, "head_hash": account.head_hash,
                                       "clawback": account.clawback, "earned": account.earned,
                                       "redeemed": account.redeemed, "old_seq": account.seq}
        owing = [key for key, state in self._state.items() if state["kind"] == "household" and state["clawback"] > 0]
        if owing:
            for lot in db.session.scalars(
                select(PointLot).where(PointLot.account_id.in_(owing), PointLot.remaining > 0)
                .with_for_update().execution_options(populate_existing=True)
            ):
                self._lot_start[lot.id] = lot.remaining
                self._open_lots.setdefault(lot.account_id, []).append(
                    {"id": lot.id, "remaining": lot.remaining, "expires_at": lot.expires_at, "new": False,
                     "object": lot})

    def _account(self, key: str) -> dict:
        state = self._state.get(key)
        if state is None:
            raise AssertionError(f"ledger account {key} is not one the journal was opened with")
        return state

    def balance(self, key: str) -> int:
        return self._account(key)["balance"]

    def award(self, household_id: str, amount: int, *, kind: str, ref_type: str, ref_id: str, at,
              actor_id: str | None = None, source: str | None = None) -> int:
        """`service.award`: credit a household from the batch's issuance shard (or the `source` account
        id), withholding any outstanding clawback; returns the points that reached the wallet."""
        if amount <= 0:
            return 0
        wallet, issuance = account_id("household", household_id), self._issuance
        self._transfer(source or issuance, wallet, amount, kind, ref_type, ref_id, actor_id, None, at)
        owed = self._account(wallet)["clawback"]
        if owed <= 0:
            return amount
        withheld = min(owed, amount)
        self._transfer(wallet, issuance, withheld, EntryKind.CLAWBACK_RECOVERY, ref_type, ref_id, actor_id,
                       WITHHELD, at)
        self._account(wallet)["clawback"] -= withheld
        return amount - withheld

    def _transfer(self, debit: str, credit: str, amount: int, kind, ref_type, ref_id, actor_id, reason, at):
        kind = EntryKind(kind).value
        payer = self._account(debit)
        if payer["kind"] not in SYSTEM_KINDS and payer["balance"] < amount:
            raise InsufficientPoints(f"The account holds {payer['balance']} points, {amount} are needed")
        transfer_id = new_id()
        fields = dict(transfer_id=transfer_id, kind=kind, ref_type=ref_type, ref_id=str(ref_id), actor_id=actor_id,
                      reason=reason, created_at=at)
        at_iso = at.isoformat()
        self._append(debit, -amount, fields, at_iso)
        self._append(credit, amount, fields, at_iso)
        if payer["kind"] == "household":
            self._consume_lots(debit, amount, transfer_id)
        if self._account(credit)["kind"] == "household":
            lot = {"id": new_id(), "account_id": credit, "transfer_id": transfer_id, "amount": amount,
                   "remaining": amount, "expires_at": _add_months(at, self._expiry_months),
                   "created_at": at}
            self._lots.append(lot)
            if credit in self._open_lots or self._account(credit)["clawback"] > 0:
                self._open_lots.setdefault(credit, []).append(
                    {"id": lot["id"], "expires_at": lot["expires_at"], "row": lot, "new": True})

    def _append(self, key: str, amount: int, fields: dict, at_iso: str) -> None:
        state = self._account(key)
        entry = {"id": new_id(), "account_id": key, "seq": state["seq"] + 1, "amount": amount,
                 "balance_after": state["balance"] + amount, "prev_hash": state["head_hash"], **fields}
        entry["hash"] = chain_hash(state["head_hash"], entry["id"], fields["transfer_id"], key, entry["seq"], amount,
                                   entry["balance_after"], fields["kind"], fields["ref_type"], fields["ref_id"],
                                   fields["actor_id"], fields["reason"], at_iso)
        state["balance"], state["seq"], state["head_hash"] = entry["balance_after"], entry["seq"], entry["hash"]
        earned, redeemed = totals_delta(fields["kind"], amount)
        state["earned"], state["redeemed"] = state["earned"] + earned, state["redeemed"] + redeemed
        self._entries.append(entry)

    def _consume_lots(self, key: str, amount: int, transfer_id: str) -> None:
        """The lots that expire first pay, as `service._consume_lots` takes them."""
        left = amount
        for lot in sorted(self._open_lots.get(key, []), key=lambda lot: (lot["expires_at"], lot["id"])):
            remaining = lot["row"]["remaining"] if lot["new"] else lot["remaining"]
            if left == 0:
                break
            if remaining <= 0:
                continue
            take = min(remaining, left)
            if lot["new"]:
                lot["row"]["remaining"] -= take
            else:
                lot["remaining"] -= take
            left -= take
            self._lot_uses.append({"id": new_id(), "lot_id": lot["id"], "transfer_id": transfer_id, "amount": take})
        if left:
            raise Conflict("The household's point lots do not cover its balance")

    def write(self) -> None:
        """Append every entry, lot and lot use, and move every account: one statement per table."""
        insert_rows(LedgerEntry.__table__, self._entries)
        insert_rows(PointLot.__table__, self._lots)
        spent = [{"id": lot["id"], "remaining": lot["remaining"], "old_remaining": self._lot_start[lot["id"]]}
                 for lots in self._open_lots.values() for lot in lots
                 if not lot["new"] and lot["remaining"] != self._lot_start[lot["id"]]]
        if update_rows(PointLot.__table__, spent, match=["id"], guard={"remaining": "old_remaining"}) != len(spent):
            raise Conflict("The household's point lots changed concurrently; retry")
        for lot in (lot for lots in self._open_lots.values() for lot in lots if not lot["new"]):
            set_loaded(lot["object"], {"remaining": lot["remaining"]})
            self._lot_start[lot["id"]] = lot["remaining"]
        insert_rows(LotUse.__table__, self._lot_uses)
        moved = [{"id": key, "old_seq": s["old_seq"], "balance": s["balance"], "seq": s["seq"],
                  "head_hash": s["head_hash"], "clawback": s["clawback"], "earned": s["earned"],
                  "redeemed": s["redeemed"]}
                 for key, s in sorted(self._state.items()) if s["seq"] != s["old_seq"]]
        if update_rows(LedgerAccount.__table__, moved, match=["id"], guard={"seq": "old_seq"}) != len(moved):
            raise Conflict("The account changed concurrently; retry")
        for key, state in self._state.items():  # mirror the UPDATE on the loaded rows, as service._append does
            set_loaded(state["object"], {name: state[name] for name in _MOVED})
            state["old_seq"] = state["seq"]
        self._entries, self._lots, self._lot_uses = [], [], []
