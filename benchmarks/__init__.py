"""Speed and scale figures for kubegpu.core (``make bench``); not part of ``make test``."""
