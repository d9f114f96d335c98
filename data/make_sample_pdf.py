"""Generate data/sample/harbour-handbook.pdf, the multi-page PDF of the sample corpus.

Usage:  python data/make_sample_pdf.py [OUTPUT_PATH]

Needs fpdf2 (``pip install fpdf2``). Uses only the core Helvetica font, so all text is
plain ASCII. The output is deterministic for a given fpdf2 version: the creation date is
fixed and no random document ID is written. One chapter per page; every page has its own
content so that page-level retrieval and citations can be tested.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF

TITLE = "Port Wren Harbour Handbook"
EDITION = "2024 edition - Port Wren Harbour Commission"
FIXED_DATE = datetime(2024, 3, 1, 9, 0, 0, tzinfo=UTC)
DEFAULT_OUT = Path(__file__).resolve().parent / "sample" / "harbour-handbook.pdf"

# Each chapter: (title, [blocks]); a block is ("p", text) for a paragraph,
# ("ul", [items]) for a bullet list, or ("table", [header, *rows]) for a simple table.
Block = tuple[str, object]

CHAPTERS: list[tuple[str, list[Block]]] = [
    (
        "1. Welcome to Port Wren Harbour",
        [
            (
                "p",
                "This handbook is published by the Port Wren Harbour Commission for everyone who keeps a "
                "boat in, visits or works in Port Wren Harbour. It complements the Notices to Mariners "
                "issued by the Harbour Master and the harbour by-laws. The Commission was established "
                "by Act of Parliament in 1851 and is governed by a board of seven commissioners, three "
                "of them elected by harbour users.",
            ),
            (
                "p",
                "The harbour consists of the outer harbour, sheltered by the 410 m North Mole completed "
                "in 1893, and the drying inner basin behind a tidal sill. The outer harbour has four "
                "pontoons (A to D) with 120 berths and an area of swinging moorings known as the Pool, "
                "with 84 moorings. The inner basin has 30 drying berths along the Quay Wall.",
            ),
            (
                "p",
                "Harbour limits: all waters north of a line joining Gannet Head to the Skerry South "
                "cardinal buoy and on to Penmarrow Point, as far upstream as the old ferry steps at "
                "Carrow Reach.",
            ),
            (
                "ul",
                [
                    "Harbour Master: Captain Ruth Calloway (since 2018)",
                    "Deputy Harbour Master: Jory Pengelly",
                    "Harbour office: Quay Street, open 08:00-17:00 daily (08:00-20:00 from April to October)",
                    'Harbour control: VHF channel 14, call sign "Port Wren Harbour"',
                    "Telephone: 01632 960214 (24-hour line: 01632 960215)",
                ],
            ),
            (
                "p",
                "Visitors should call harbour control on channel 14 when about 1 nautical mile from the "
                "entrance, giving the vessel name, length, draft and intended length of stay. A berth "
                "will normally be allocated on Pontoon D, which has 24 visitor berths.",
            ),
        ],
    ),
    (
        "2. Tides and Tidal Streams",
        [
            (
                "p",
                "Tides at Port Wren are semi-diurnal. All heights in this handbook are in metres above "
                "chart datum (CD). Predictions are derived from the radar tide gauge on the North Mole, "
                "which the Commission operates jointly with the Port Wren Marine Research Station "
                "(PWMRS).",
            ),
            (
                "table",
                [
                    ("Tidal level", "Height above CD"),
                    ("Mean high water springs (MHWS)", "5.1 m"),
                    ("Mean high water neaps (MHWN)", "3.9 m"),
                    ("Mean low water neaps (MLWN)", "1.8 m"),
                    ("Mean low water springs (MLWS)", "0.5 m"),
                    ("Highest astronomical tide (HAT)", "5.8 m"),
                    ("Inner basin sill", "1.2 m"),
                ],
            ),
            (
                "p",
                "Mean spring range is 4.6 m and mean neap range 2.1 m. Use the rule of twelfths as a "
                "guide only: in the third and fourth hours of the flood the tide rises by a quarter "
                "of its range each hour.",
            ),
            (
                "p",
                "Tidal streams. In Wren Sound, between Gannet Head and the Wren Skerries, the flood "
                "stream sets north-east from about 5 hours before high water and the ebb sets "
                "south-west from about 1 hour after high water. Spring rates exceed 2.5 knots on the "
                "ebb, as measured by the PWMRS current profiler on the seabed of the Sound. Inside the "
                "harbour the stream rarely exceeds 0.5 knots.",
            ),
            (
                "p",
                "The Carrow Bar has a least charted depth of 0.9 m. Steep breaking seas form on the Bar "
                "during the ebb in south-westerly winds of Force 6 and above; do not attempt to cross "
                "it in these conditions. The inner basin flap gate is raised at half-ebb to retain "
                "1.0 m of water and lowered at half-flood.",
            ),
        ],
    ),
    (
        "3. Moorings and Berthing",
        [
            (
                "p",
                "Pontoons. Pontoon A is reserved for the fishing fleet, the research vessel RV Kittiwake "
                "and commercial craft. Pontoons B and C are for annual berth holders. Pontoon D holds "
                "the 24 visitor berths. The fuel berth is on the end of Pontoon B. The outer pontoons "
                "are dredged to 1.8 m below chart datum; a maintenance dredge of about 12,000 cubic "
                "metres was carried out in October and November 2023.",
            ),
            (
                "ul",
                [
                    "Maximum length overall (LOA) on the pontoons: 15 m; larger vessels by arrangement only.",
                    "Rafting: at most three boats abreast on Pontoon D; the outside boat must not obstruct "
                    "the fairway.",
                    "Shore power: 16 A sockets on every pontoon, paid by card at the pontoon head.",
                    "Fresh water: taps at every finger; hoses must not be left running.",
                    "Pontoon gates are locked from 22:00 to 06:00; the code is given by the harbour office.",
                ],
            ),
            (
                "p",
                "Swinging moorings in the Pool. Mooring buoys are colour-coded: WHITE buoys are annual "
                "private moorings, ORANGE buoys are visitor moorings (maximum 12 m LOA, 10 tonnes) and "
                "the single YELLOW buoy off Chapel Cove belongs to the PWMRS. Every private mooring "
                "must be lifted and inspected by an approved contractor at least every two years; the "
                "inspection certificate must be lodged with the harbour office by 31 March.",
            ),
            (
                "p",
                "Inner basin. The 30 drying berths along the Quay Wall are suitable for bilge-keel and "
                "lifting-keel boats and for vessels able to take the ground against the wall. The bottom "
                "is soft mud. A vessel drawing 1.5 m can cross the sill about 2 h 30 min either side of "
                "high water at springs and about 1 h 45 min either side at neaps.",
            ),
            (
                "p",
                "Laying up ashore. Winter storage is available in the boat park at the root of the "
                "North Mole from 1 October to 30 April. The Commission's 25-tonne mobile boat hoist "
                "operates on weekdays by appointment.",
            ),
        ],
    ),
    (
        "4. Harbour Dues and Fees, 1 April 2024 to 31 March 2025",
        [
            (
                "p",
                "All charges are in pounds sterling (GBP) and include VAT. Lengths are length overall "
                "(LOA), rounded up to the next whole metre. Payment is due on arrival at the harbour "
                "office or by card at the pontoon head terminals.",
            ),
            (
                "table",
                [
                    ("Item", "Charge (GBP)"),
                    ("Visitor pontoon berth, per metre per night", "3.20"),
                    ("Visitor pontoon berth, per metre per week (7 nights)", "19.20"),
                    ("Visitor swinging mooring, per metre per night", "2.10"),
                    ("Short stay under 4 hours, per boat", "8.00"),
                    ("Annual pontoon berth, per metre per year", "285.00"),
                    ("Annual swinging mooring licence, per year", "410.00"),
                    ("Inner basin drying berth, per metre per year", "118.00"),
                    ("Slipway launch, per day", "12.00"),
                    ("Slipway launch, annual permit", "95.00"),
                    ("Personal watercraft launch, per day", "25.00"),
                    ("Shore power, per kWh", "0.45"),
                    ("Boat hoist lift and return (up to 10 m LOA)", "160.00"),
                    ("Boat park winter storage, per metre per month", "14.50"),
                    ("Fishing vessel harbour dues, per landing", "6.50"),
                ],
            ),
            (
                "p",
                "Discounts: 10 per cent for annual berth holders who pay in full by 1 April; 50 per cent "
                "on visitor nights between 1 November and 28 February. Boats owned by members of the "
                "Port Wren Bird Club running licensed wildlife trips pay the fishing vessel rate. "
                "Late payment of annual fees attracts a surcharge of 5 per cent per month.",
            ),
            (
                "p",
                "Electricity on the pontoons comes partly from the Port Wren Solar Microgrid; the "
                "shore power charge is reviewed every April with Port Wren Community Energy.",
            ),
        ],
    ),
    (
        "5. Emergency Procedures",
        [
            (
                "p",
                "In any emergency at sea, call the Coastguard: VHF channel 16 or DSC, or dial 999 from a "
                "phone and ask for the Coastguard. Then inform Port Wren Harbour on channel 14. The "
                "Port Wren Lifeboat Station launches its all-weather lifeboat Mary Treloar on the "
                "request of the Coastguard only.",
            ),
            (
                "ul",
                [
                    "MAYDAY: grave and imminent danger to a vessel or person. Say MAYDAY three times, the "
                    "vessel name three times, then position, nature of distress, people on board.",
                    "PAN-PAN: urgent situation without immediate danger to life (for example engine failure "
                    "near the Carrow Bar).",
                    "Person overboard in the harbour: shout, throw the nearest lifebuoy, keep pointing, call "
                    "channel 14. Lifebuoys hang at every pontoon head and every 50 m along the North Mole.",
                    "Fire on a vessel or pontoon: raise the alarm, call 999 (Fire Service), use the fire "
                    "point extinguishers (one every 30 m on each pontoon), and move neighbouring boats only "
                    "if safe. Shore power must be isolated at the pontoon head.",
                    "Oil or fuel spill: stop the source, inform the harbour office at once. "
                    "Spill kits are kept at the fuel berth and at the root of the North Mole.",
                ],
            ),
            (
                "p",
                "Muster point. In an evacuation of the pontoons, gather at the harbour car park by the "
                "harbour office. Defibrillators (AED) are mounted outside the harbour office, at the "
                "lifeboat station and at the Chapel Hill community hall.",
            ),
            (
                "p",
                "Power cuts. If mains power fails, the harbour office, the lifeboat station and channel "
                "14 harbour control remain supplied by the Port Wren Solar Microgrid. This was "
                "demonstrated during Storm Isolde on 7 January 2023, when the lifeboat launched to a "
                "fishing vessel off the Carrow Bar during a 9 hour 20 minute outage.",
            ),
            (
                "p",
                "Severe weather. When a gale warning is issued the harbour staff double the lines of "
                "visiting boats on Pontoon D and may ask visitors to move to the inner basin. "
                "Owners of boats on swinging moorings are responsible for their own extra chafe protection.",
            ),
        ],
    ),
    (
        "6. VHF Radio Channels and Contacts",
        [
            (
                "p",
                "All vessels over 10 m LOA must call Port Wren Harbour on channel 14 before entering or "
                "leaving and keep a listening watch on channel 14 when under way within harbour limits. "
                "Channel 14 is staffed 07:00-21:00 from April to October and 08:00-17:00 from November "
                "to March; outside these hours use the 24-hour telephone line.",
            ),
            (
                "table",
                [
                    ("VHF channel", "Use"),
                    ("16", "Distress, urgency and safety; calling the Coastguard"),
                    ("14", 'Port Wren Harbour control (call sign "Port Wren Harbour")'),
                    ("80", "Pontoon berthing master, April to October"),
                    ("72", "Inter-ship working channel of the Port Wren fishing fleet"),
                    ("6", "Search and rescue on-scene working, when directed"),
                    ("M (37)", "Regatta committee boat during the Wren Regatta"),
                ],
            ),
            (
                "p",
                "The Coastguard broadcasts Maritime Safety Information, including gale warnings and "
                "inshore forecasts, after an initial announcement on channel 16. The PWMRS WREN-1 buoy "
                "does not use VHF: it reports over a separate UHF link to the research station, and "
                "its live sea temperature and wave height appear on the display board outside the "
                "harbour office.",
            ),
            (
                "ul",
                [
                    "Harbour office: 01632 960214 (24-hour line 01632 960215)",
                    "Port Wren Marine Research Station (PWMRS): 01632 960480",
                    "Port Wren Lifeboat Station (non-emergency): 01632 960377",
                    "Friends of Gannet Head (lighthouse open days): 01632 960552",
                    "Port Wren Community Energy, The Depot, Quay Street: 01632 960619",
                ],
            ),
        ],
    ),
    (
        "7. Environment and Local Services",
        [
            (
                "p",
                "The waters around Port Wren support kelp forests, grey seals and important seabird "
                "colonies. Please help protect them.",
            ),
            (
                "ul",
                [
                    "Seabird protection zone: from 1 April to 31 July, within 200 m of the Wren Skerries, "
                    "speed is limited to 6 knots and landing is prohibited (puffins and shags nest there).",
                    "Kelp: harbour by-law 14 prohibits wild kelp harvesting at Skerry Point for three years "
                    "from 1 May 2023.",
                    "Invasive species: check hulls and ropes for wakame (Undaria pinnatifida) and report "
                    "finds to the PWMRS.",
                    "Sewage pump-out: free pump-out station on Pontoon B, next to the fuel berth.",
                    "Waste: general waste and recycling at the root of the North Mole; waste oil tank and "
                    "used battery bin beside the boat park.",
                    "Anti-fouling: scrubbing of anti-fouled hulls on the public slipway is not "
                    "permitted; use the wash-down pad with silt trap by the boat hoist.",
                ],
            ),
            (
                "p",
                "Local services within 300 m of the harbour office include the chandlery on Quay Street, "
                "the Wren Loaf Cooperative Bakery on Fore Street (open Tuesday to Friday from 07:30 and "
                "Saturday from 07:00), launderette and showers in the harbour office building (token "
                "GBP 2.00), and the medical centre on Chapel Hill.",
            ),
            (
                "p",
                "Boat trips to see the puffins of the Wren Skerries and the kittiwakes of Gannet Head "
                "leave Pontoon A on summer evenings; only licensed operators may approach the colonies. "
                "Gannet Head Lighthouse (character Fl(2) W 15s, range 18 nautical miles) is open to "
                "visitors on the first Sunday of each month from April to October.",
            ),
        ],
    ),
]


class HandbookPDF(FPDF):
    def header(self) -> None:
        self.set_font("Helvetica", "I", 8)
        self.set_text_color(90, 90, 90)
        self.cell(0, 6, f"{TITLE} - {EDITION}", align="R")
        self.ln(10)
        self.set_text_color(0, 0, 0)

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("Helvetica", "I", 8)
        self.set_text_color(90, 90, 90)
        self.cell(0, 10, f"Page {self.page_no()}", align="C")
        self.set_text_color(0, 0, 0)


def _check_ascii(text: str) -> str:
    text.encode("ascii")  # raises UnicodeEncodeError: core fonts only cover latin-1; keep to ASCII
    return text


def _render_block(pdf: FPDF, kind: str, body: object) -> None:
    width = pdf.epw
    if kind == "p":
        pdf.set_font("Helvetica", "", 10.5)
        pdf.multi_cell(width, 5.2, _check_ascii(str(body)), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2.5)
    elif kind == "ul":
        pdf.set_font("Helvetica", "", 10.5)
        for item in body:  # type: ignore[union-attr]
            pdf.set_x(pdf.l_margin + 3)
            pdf.cell(5, 5.2, "-")
            pdf.multi_cell(width - 8, 5.2, _check_ascii(item), new_x="LMARGIN", new_y="NEXT")
            pdf.ln(0.8)
        pdf.ln(2)
    elif kind == "table":
        rows = list(body)  # type: ignore[call-overload]
        col1 = width * 0.68
        col2 = width - col1
        for i, (left, right) in enumerate(rows):
            pdf.set_font("Helvetica", "B" if i == 0 else "", 10)
            pdf.cell(col1, 6.2, _check_ascii(left), border=1)
            pdf.cell(col2, 6.2, _check_ascii(right), border=1, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3.5)
    else:
        raise ValueError(f"unknown block kind {kind!r}")


def build(out: Path) -> Path:
    pdf = HandbookPDF(format="A4")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_title(TITLE)
    pdf.set_author("Port Wren Harbour Commission")
    pdf.set_subject("Tides, moorings, fees, emergency procedures and radio channels for Port Wren Harbour")
    pdf.set_creator("data/make_sample_pdf.py (localrag sample corpus)")
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.set_margins(18, 15, 18)

    for number, (title, blocks) in enumerate(CHAPTERS, start=1):
        pdf.add_page()
        if number == 1:
            pdf.set_font("Helvetica", "B", 20)
            pdf.cell(0, 11, TITLE, new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("Helvetica", "", 11)
            pdf.cell(0, 7, EDITION, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(4)
        pdf.set_font("Helvetica", "B", 15)
        pdf.cell(0, 9, _check_ascii(title), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        for kind, body in blocks:
            _render_block(pdf, kind, body)
        if pdf.page_no() != number:
            raise RuntimeError(f"chapter {title!r} overflowed onto a second page; shorten it")

    out.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(out))
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else DEFAULT_OUT
    path = build(out)
    print(f"wrote {path} ({path.stat().st_size} bytes, {len(CHAPTERS)} pages)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
