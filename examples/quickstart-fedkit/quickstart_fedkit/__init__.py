"""A quickstart-style Flower app on synthetic data that uses fedkit's parts."""
