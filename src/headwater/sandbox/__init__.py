"""Running untrusted user code (the `code` node) outside the server process."""

from headwater.sandbox.code_runner import (
    CodeExecutionError,
    CodeLimits,
    prepare_sandbox,
    run_code,
    sandbox_mode,
)

__all__ = ["CodeExecutionError", "CodeLimits", "prepare_sandbox", "run_code", "sandbox_mode"]
