"""Number sequences and simple statistics."""


def fibonacci(n):
    """Return the n-th Fibonacci number."""
    if n < 2:
        return n
    return fibonacci(n - 1) + fibonacci(n - 2)


def squares(n):
    """The first n square numbers."""
    return [i * i for i in range(n)]


def mean(values):
    """Arithmetic mean of a list of numbers."""
