"""Atomic structures in and out: file reading and writing with labels, input checks, neighbour
lists, and the Voigt/virial conventions every later step shares."""
