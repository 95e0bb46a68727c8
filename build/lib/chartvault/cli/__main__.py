from chartvault.cli import app

app()
