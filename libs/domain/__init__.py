"""Pure building blocks shared by every service's domain: errors and the decider shape."""
