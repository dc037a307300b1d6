"""The trigger scheduler: picking due polls, running them, recording fires."""
