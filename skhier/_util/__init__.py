"""Small helpers every layer may use: warnings, threads, interrupts."""
