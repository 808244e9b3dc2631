"""The fix loop: error report, code context, prompts, the Claude loop, the fix result."""
