from valuescope.cli import entry

entry()
