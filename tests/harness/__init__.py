"""Test harness: run playbooks against the lab through ansible-runner, the engine AWX uses."""
