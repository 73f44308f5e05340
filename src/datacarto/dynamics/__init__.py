"""Recording, storing and converting training dynamics."""
