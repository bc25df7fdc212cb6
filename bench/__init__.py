"""Benchmarks (see README.md); ``bench.peers`` is shared with tests/test_webrtc.py."""
