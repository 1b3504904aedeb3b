"""The event log behind one interface (`base`), and its backends."""
