"""The command-line shell: the only package that imports typer.

Each command module parses its options, calls one library function with plain values and renders
what it returns. Nothing here computes anything the library could.
"""
