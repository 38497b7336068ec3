"""Small geometry helpers for points in the plane and simple shapes."""
import math


def distance(p, q):
    """Euclidean distance between the points p and q, given as (x, y) pairs."""
    return math.hypot(q[0] - p[0], q[1] - p[1])


def rectangle_area(width, height):
    """Area of a rectangle with the given side lengths."""
    return width * height


def circle_area(radius):
    """Area of a circle with the given radius."""
