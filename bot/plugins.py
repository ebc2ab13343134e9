"""The plugins `python main.py` loads, in order. A plugin is a module with `setup(app)`.

Channels come first so that handlers can see which are configured; the console comes last and
stands in for every channel that is not configured. Demo seeders run in this order too.
"""

DEFAULT_PLUGINS: list[str] = [
    "bot.builtin",
    "channels.sms.plugin",
    "channels.slack",
    "channels.telegram",
    "handlers.enrollment",
    "handlers.store",
    "handlers.customers",
    "handlers.budtenders",
    "handlers.team_leads",
    "handlers.sales_managers",
    "channels.console",
]
