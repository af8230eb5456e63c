"""Test peers that stand in for hardware: a loopback ADB device and a host benchmark_model runner."""
