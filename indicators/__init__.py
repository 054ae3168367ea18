"""Pure indicator maths: each as a vectorized numpy function and an O(1) incremental class.

Imports nothing of the project and does no I/O (import-linter enforces it).
"""
