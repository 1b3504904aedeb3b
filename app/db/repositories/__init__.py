"""Repositories: collections of domain objects over one connection, one module per
aggregate, each statement beside the class that runs it. They never commit: the unit of work
(`app.db.uow`) does."""
