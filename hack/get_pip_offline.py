"""Stands in for the get-pip.py that ansible-test downloads to put pip into the
virtual environments of its sanity tests; that download host is out of reach
here. Same job, same arguments: the standard library's ensurepip brings pip,
then pip installs the version ansible-test asked for from the package index."""

from __future__ import annotations

import subprocess
import sys

# get-pip.py's own switches; ensurepip never installs setuptools or wheel.
OWN_SWITCHES = {"--no-setuptools", "--no-wheel"}

subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, "-m", "pip", "install", *[arg for arg in sys.argv[1:] if arg not in OWN_SWITCHES]])
