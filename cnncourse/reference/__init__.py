"""NumPy references written from scratch: each one teaches a piece of the lectures and is checked
against Keras (same inputs, same outputs and gradients) in the unit tests and the notebooks."""
