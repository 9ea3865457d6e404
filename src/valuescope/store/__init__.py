"""Store: SQLite storage of answers, conversations and geometry records."""
