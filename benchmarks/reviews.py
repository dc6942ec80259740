"""Varied review texts for benchmarks and load tests: short and long, clean and messy."""

REVIEWS = [
    "Great flight, friendly crew and we landed early. Thank you!",
    "Two hours on the tarmac with no water and no explanation. Never again.",
    "Flight 2214 to Denver is boarding at gate B12.",
    "@united lost my bag AGAIN. third time this year #fail",
    "Loved the new seats, so much legroom 😍",
    "meh. it was fine i guess",
    "The customer service agent on the phone was incredibly patient and fixed everything.",
    "Cancelled Flightled, rebooked for tomorrow, hotel voucher was a joke. Terrible experience.",
    "Does anyone know if the lounge in Terminal 3 is open on Sundays?",
    "Self-driving cars will change how we commute, the question is when.",
    "sooooo happy right now!!! best concert ever :)",
    "I can't believe they charged me $200 to change a seat. Ridiculous.",
    "New phone arrived today. Battery life seems ok so far.",
    "Thanks @JetBlue for the birthday upgrade, you made my day!",
    "The app keeps crashing when I try to check in. Please fix it.",
    "Watching the game tonight with friends #DeflateGate",
    "Worst. Customer. Service. Ever. 😡😡😡",
    "The hotel was clean, the staff were kind, and breakfast was decent.",
    "Delayed again... why does this always happen on Fridays",
    "Excellent food, attentive waiters, a bit pricey but worth it.",
    "Café au lait was perfect, merci beaucoup!",
    "I've been on hold for 45 minutes. Is anyone there?",
    "Just landed in Chicago. Smooth ride, thanks crew.",
    "The new update removed my favourite feature, not impressed.",
    (
        "I have flown with this airline for years and always recommended it to friends, but "
        "this trip changed my mind: the flight was overbooked, I was bumped without warning, "
        "the compensation was a voucher that expires in a month, and the staff at the desk "
        "were dismissive when I asked for a meal. I hope management reads this."
    ),
    "Not bad, not great. Average experience overall.",
    "Amazing sunset from the window seat ✈️🌅",
    "Why is wifi $30 for a two hour flight? Seriously?",
    "Kudos to the pilot for the smooth landing in that storm!",
    "Received the wrong item and the return process is a nightmare.",
]


def rotating_reviews() -> list[str]:
    """900 different texts for the rotating benchmarks (wrk): every review above, then
    every ordered pair of two different ones, so no two requests in a row are alike and a
    cache keyed on the text would hit once in 900."""
    pairs = [f"{first} {second}" for first in REVIEWS for second in REVIEWS if first != second]
    return [*REVIEWS, *pairs]


def rotating_batches(size: int) -> list[list[str]]:
    """Batches of ``size`` reviews, one per starting offset in REVIEWS: the same texts as
    the in-process pipeline's batch, in a different order each time."""
    return [[REVIEWS[(start + i) % len(REVIEWS)] for i in range(size)] for start in range(30)]
