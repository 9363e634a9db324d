"""Asia/Shanghai days and months: every cap, "today", period and settlement month uses them."""
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from .columns import utcnow

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local_date(moment: datetime) -> date:
    """The Asia/Shanghai calendar day of an aware datetime."""
    return moment.astimezone(SHANGHAI).date()


def today() -> date:
    return local_date(utcnow())


def day_start(day: date) -> datetime:
    """00:00 Asia/Shanghai of `day`, as an aware datetime."""
    return datetime.combine(day, time(), tzinfo=SHANGHAI)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of an Asia/Shanghai calendar day, as aware datetimes."""
    start = datetime.combine(day, time(), tzinfo=SHANGHAI)
    return start, datetime.combine(day + timedelta(days=1), time(), tzinfo=SHANGHAI)


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[start, end) of an Asia/Shanghai month written YYYY-MM."""
    year, number = int(month[:4]), int(month[5:7])
    start = datetime(year, number, 1, tzinfo=SHANGHAI)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=SHANGHAI)
    return start, end


def month_of(moment: datetime) -> str:
    """YYYY-MM of the Asia/Shanghai month an aware datetime falls in."""
    return moment.astimezone(SHANGHAI).strftime("%Y-%m")


def current_month() -> str:
    return month_of(utcnow())
