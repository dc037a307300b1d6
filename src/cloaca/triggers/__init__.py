"""Defining event triggers: the class and decorator forms, poll results and the registry."""
