"""Latency benchmark harness (issue 4): paced, concurrent measurement against a running server."""
