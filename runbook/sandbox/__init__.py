"""The sandbox: a containerized quicprochat server with a fault injected.

``image`` builds Dockerfile.testserver and bootstraps the base image when no
registry has it. ``container`` starts and stops the server under systemd.
``faults`` injects and proves faults. ``scenarios`` loads the YAML files that
pair a playbook section with a fault and its post-conditions. Nothing here is
imported when runbook starts: the CLI imports it only for the sandbox.
"""
