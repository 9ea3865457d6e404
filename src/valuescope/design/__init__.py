"""Design: instruments, personas, contexts and the plan of queries; executes nothing."""
