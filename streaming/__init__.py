"""Engine-free, I/O-free streaming logic: framing, VAD gate, turns, chunking, pacing, cancellation."""
