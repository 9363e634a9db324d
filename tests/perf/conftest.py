from tests.rewards.builders import *  # noqa: F401,F403
