"""The thinking module, engine-free: what the assistant knows beyond the current turn (documents, memory)."""
