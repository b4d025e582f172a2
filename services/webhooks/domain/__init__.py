"""What a webhook is and how deliveries behave: pure values and functions, no I/O."""
