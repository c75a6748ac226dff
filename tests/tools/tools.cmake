# Test tools (programs the black-box tests drive): see tests/tools/*.c.
