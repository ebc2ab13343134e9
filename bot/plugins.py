"""The plugins `python main.py` loads, in order. A plugin is a module with `setup(app)`.

Channels come first so that handlers can see which are configured; the console comes last and
stands in for every channel that is not configured.
"""

DEFAULT_PLUGINS: list[str] = [
    "bot.builtin",
    "handlers.store",
    "handlers.customers",
    "handlers.budtenders",  # after the store: subscribes to its orders, seeds demo data after it
]
