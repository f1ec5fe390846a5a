"""Finding the tests that exercise a function, and running candidates against them safely."""
