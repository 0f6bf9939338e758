"""Job domain: states, parameters and the service that creates, lists and cancels jobs."""
