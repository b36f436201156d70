"""How good a model is: errors against reference labels (tables, parity data), plots, and
physical properties (``gapfit.validate``)."""
