"""The quickstart-fedkit task under Flower's own SecAgg+ (legacy API), for comparison."""
