"""The tests' view of tools/mockrun.py: the real program under mocks, with the fake cloud's values."""

from tools.mockrun import (  # noqa: F401 - re-exported for the tests
    FAKE_ADDRESSES,
    FAKE_CA,
    FAKE_ENDPOINTS,
    FAKE_POD_CIDRS,
    FAKE_RANDOM_PASSWORD,
    FAKE_READER_TOKEN,
    PROJECT_ID,
    Resource,
    Run,
    RunFailed,
    base_config,
    run_both,
    run_stack,
)
