"""The local stack: an embedded broker and database, service processes, and the demo."""
