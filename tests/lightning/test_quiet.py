"""Third-party noise before the first step is silenced; other warnings still show."""

from __future__ import annotations

import logging
import warnings

import pytest


def test_known_noise_is_dropped_and_the_rest_kept(caplog: pytest.LogCaptureFixture) -> None:
    from lightning.pytorch.utilities.rank_zero import rank_zero_info

    from nemolite.lightning.quiet import quiet_third_party

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_third_party.__globals__["_installed"] = False  # install into this catch_warnings scope
        quiet_third_party()
        warnings.warn("Transformer Engine and Apex are not installed. Falling back", UserWarning, stacklevel=1)
        warnings.warn("The `srun` command is available on your system but is not used.", UserWarning,
                      stacklevel=1)
        warnings.warn("something the user must see", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something the user must see"]
    with caplog.at_level(logging.INFO):
        rank_zero_info("💡 Tip: For seamless cloud logging, try installing litlogger")
        rank_zero_info("GPU available: False, used: False")
        rank_zero_info("a line that stays")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["a line that stays"], messages
