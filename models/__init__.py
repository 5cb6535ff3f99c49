"""Engine adapters behind the small interfaces in :mod:`models.interfaces`."""
