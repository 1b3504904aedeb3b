"""The system of record behind one interface (`base`): PostgreSQL for the service, memory for
the engine's unit tests."""
