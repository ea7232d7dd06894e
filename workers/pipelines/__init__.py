"""Multi-step background flows: orchestrate specs and marketplace services, report progress."""
