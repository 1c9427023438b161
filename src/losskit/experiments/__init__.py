"""Runnable experiments that reproduce the evidence behind the losses (see each module)."""
