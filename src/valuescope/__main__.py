from valuescope.cli import app

app(prog_name="valuescope")
