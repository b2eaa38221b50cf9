from imbot_app import on_command


@on_command("weather")
def weather(command):
    city = command.params or "your town"
    command.answer(f"No clouds over {city} today.")
