"""Deterministic synthetic archive for the search benchmark: medical-looking documents, nothing real.

    python -m bench.synth [--docs N] [--out store.sqlite]

Document ``i`` depends only on ``(seed, i)``, so the first 10,000 documents of a 100,000-document
archive are the 10,000-document archive, and any document can be regenerated on its own (the query
sampler does). Generation streams: nothing is held beyond the current batch.

Every word list below was written by hand for this file; names, MRNs and dates are invented.
Patients accumulate documents as the archive grows (document ``i`` picks one of the first ``i/8 + 1``
patients), so early patients have long charts, as real ones do. A patient's documents within the same
30-day window share an encounter id; each document carries 0-3 ICD-10 codes. About 0.5 % of words carry an
OCR-style misreading (``l``/``1``, ``o``/``0``, ``rn``/``m``...).
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from itertools import accumulate
from pathlib import Path

from chartvault.search.types import IndexDocument

SEED = 20_261_123
BATCH_DOCS = 500  # one ingestion batch (and one index commit) in the real pipeline
PAGE_SEP = "\f"


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# fmt: off
FIRST_NAMES = _words(
    "Aaron Abigail Adrian Alma Amara Ansel Beatriz Bennett Bruna Calvin Camille Dario Delia Desmond "
    "Dolores Eamon Edith Elias Elena Esme Fabian Farah Felix Flora Gideon Greta Hamid Hazel Hugo Ida "
    "Ingrid Ivan Jasper Jolene Jonah Kasia Keiko Lars Leona Lionel Lucia Magnus Marisol Milo Nadia "
    "Nestor Noemi Odette Omar Orla Pascal Petra Quentin Rafaela Rowan Ruth Silas Soren Talia Teodor "
    "Thea Ulrich Vera Viktor Wanda Wesley Xavier Yara Yusuf Zelda Zoran"
)
LAST_NAMES = _words(
    "Abernathy Alvarado Baptiste Bergstrom Calloway Castellano Delacroix Dunmore Eriksen Esposito "
    "Fairbanks Ferreira Galloway Gustafson Halvorsen Hollister Ibarra Iverson Jablonski Jaramillo "
    "Kaminski Kowalczyk Lindqvist Lockhart Machado Montague Nakamura Novak Oyelaran Ostrowski "
    "Pemberton Quintero Radcliffe Rosales Sandoval Sorensen Takahashi Thornbury Underwood Valdivia "
    "Vasquez Whitcombe Wojcik Yamamoto Yilmaz Zamora Zielinski Achterberg Brennan Cavanagh Donnelly "
    "Eastwood Finnegan Garrison Hargreaves Ingram Jennings Kilbride Lancaster Mulligan Northcott "
    "Okonkwo Prendergast Rutherford Stanhope Trevelyan Upton Vance Winterbottom"
)

DOC_TYPES = (
    ("progress_note", 30),
    ("lab_report", 18),
    ("radiology_report", 12),
    ("consult_note", 10),
    ("discharge_summary", 9),
    ("medication_list", 7),
    ("referral_letter", 6),
    ("operative_note", 5),
    ("emergency_note", 3),
)
HEADINGS = (
    "CHIEF COMPLAINT:",
    "HISTORY OF PRESENT ILLNESS:",
    "PAST MEDICAL HISTORY:",
    "PAST SURGICAL HISTORY:",
    "MEDICATIONS:",
    "ALLERGIES:",
    "SOCIAL HISTORY:",
    "FAMILY HISTORY:",
    "REVIEW OF SYSTEMS:",
    "PHYSICAL EXAMINATION:",
    "LABORATORY DATA:",
    "IMAGING:",
    "ASSESSMENT:",
    "PLAN:",
    "ASSESSMENT AND PLAN:",
    "HOSPITAL COURSE:",
    "DISCHARGE INSTRUCTIONS:",
    "FINDINGS:",
    "IMPRESSION:",
    "PROCEDURE:",
    "INDICATIONS:",
    "FOLLOW-UP:",
)
DRUGS = _words(
    "metformin lisinopril amlodipine atorvastatin simvastatin rosuvastatin losartan valsartan "
    "hydrochlorothiazide chlorthalidone furosemide torsemide spironolactone metoprolol carvedilol "
    "bisoprolol diltiazem verapamil digoxin amiodarone apixaban rivaroxaban warfarin dabigatran "
    "clopidogrel ticagrelor aspirin heparin enoxaparin insulin glargine lispro aspart glipizide "
    "glimepiride sitagliptin empagliflozin dapagliflozin liraglutide semaglutide pioglitazone "
    "levothyroxine methimazole prednisone prednisolone dexamethasone hydrocortisone budesonide "
    "albuterol tiotropium fluticasone salmeterol montelukast ipratropium omeprazole pantoprazole "
    "esomeprazole famotidine ondansetron metoclopramide docusate senna lactulose polyethylene "
    "sertraline escitalopram citalopram fluoxetine paroxetine venlafaxine duloxetine bupropion "
    "mirtazapine trazodone quetiapine olanzapine risperidone aripiprazole lithium lamotrigine "
    "levetiracetam valproate carbamazepine phenytoin gabapentin pregabalin topiramate sumatriptan "
    "acetaminophen ibuprofen naproxen celecoxib tramadol oxycodone hydromorphone morphine fentanyl "
    "naloxone buprenorphine methadone lorazepam alprazolam clonazepam diazepam zolpidem melatonin "
    "amoxicillin clavulanate azithromycin doxycycline ciprofloxacin levofloxacin ceftriaxone "
    "cefazolin cephalexin vancomycin piperacillin tazobactam meropenem metronidazole nitrofurantoin "
    "trimethoprim sulfamethoxazole clindamycin linezolid fluconazole acyclovir valacyclovir "
    "oseltamivir allopurinol colchicine febuxostat methotrexate hydroxychloroquine adalimumab "
    "tamsulosin finasteride oxybutynin sildenafil estradiol medroxyprogesterone alendronate "
    "calcitriol cholecalciferol ferrous cyanocobalamin folic potassium magnesium"
)
FREQUENCIES = ("daily", "twice daily", "three times daily", "at bedtime", "every morning",
               "as needed", "every 6 hours", "every 8 hours", "weekly", "every other day")
DOSES = ("2.5", "5", "10", "12.5", "20", "25", "40", "50", "75", "81", "100", "125", "200", "250",
         "300", "400", "500", "625", "750", "850", "1000")
DIAGNOSES = (
    "type 2 diabetes mellitus", "type 1 diabetes mellitus", "essential hypertension",
    "hyperlipidemia", "coronary artery disease", "congestive heart failure",
    "heart failure with reduced ejection fraction", "atrial fibrillation", "atrial flutter",
    "chronic obstructive pulmonary disease", "asthma", "obstructive sleep apnea",
    "community acquired pneumonia", "aspiration pneumonia", "pulmonary embolism",
    "deep vein thrombosis", "chronic kidney disease stage 3", "acute kidney injury",
    "urinary tract infection", "pyelonephritis", "nephrolithiasis", "benign prostatic hyperplasia",
    "hypothyroidism", "hyperthyroidism", "osteoarthritis of the knee", "rheumatoid arthritis",
    "gout", "osteoporosis", "lumbar radiculopathy", "cervical spondylosis", "migraine",
    "epilepsy", "transient ischemic attack", "ischemic stroke", "parkinson disease",
    "alzheimer dementia", "major depressive disorder", "generalized anxiety disorder",
    "bipolar disorder", "alcohol use disorder", "opioid use disorder", "tobacco use",
    "gastroesophageal reflux disease", "peptic ulcer disease", "cholecystitis",
    "acute pancreatitis", "diverticulitis", "crohn disease", "ulcerative colitis",
    "cirrhosis", "iron deficiency anemia", "vitamin b12 deficiency", "vitamin d deficiency",
    "cellulitis of the lower leg", "sepsis", "influenza", "covid-19 infection", "obesity",
    "morbid obesity", "malnutrition", "hip fracture", "distal radius fracture",
    "rotator cuff tear", "carpal tunnel syndrome", "glaucoma", "cataract", "otitis media",
    "allergic rhinitis", "psoriasis", "atopic dermatitis", "melanoma in situ",
    "basal cell carcinoma", "breast cancer", "prostate cancer", "colon cancer",
    "lung adenocarcinoma", "lymphoma", "hypokalemia", "hyponatremia", "dehydration", "syncope",
)
SYMPTOMS = (
    "chest pain", "shortness of breath", "dyspnea on exertion", "orthopnea", "palpitations",
    "dizziness", "lightheadedness", "headache", "blurred vision", "cough", "productive cough",
    "hemoptysis", "wheezing", "fever", "chills", "night sweats", "fatigue", "weight loss",
    "weight gain", "nausea", "vomiting", "diarrhea", "constipation", "abdominal pain",
    "melena", "hematochezia", "dysuria", "urinary frequency", "hematuria", "back pain",
    "joint pain", "joint swelling", "leg swelling", "numbness", "tingling", "weakness",
    "confusion", "memory loss", "insomnia", "anxiety", "low mood", "rash", "pruritus",
    "sore throat", "ear pain", "nasal congestion", "syncope", "falls", "decreased appetite",
)
PROCEDURES = (
    "chest radiograph", "computed tomography", "magnetic resonance imaging", "ultrasound",
    "echocardiogram", "electrocardiogram", "stress test", "cardiac catheterization",
    "colonoscopy", "upper endoscopy", "bronchoscopy", "lumbar puncture", "biopsy",
    "paracentesis", "thoracentesis", "dual energy x-ray absorptiometry", "mammogram",
    "pulmonary function testing", "holter monitor", "carotid doppler", "venous duplex",
    "laparoscopic cholecystectomy", "total knee arthroplasty", "total hip arthroplasty",
    "appendectomy", "hernia repair", "coronary artery bypass grafting",
    "percutaneous coronary intervention", "cataract extraction", "skin excision",
)
ANATOMY = (
    "chest", "abdomen", "pelvis", "head", "brain", "cervical spine", "lumbar spine", "left knee",
    "right knee", "left hip", "right hip", "left shoulder", "right shoulder", "liver",
    "gallbladder", "kidneys", "bladder", "thyroid", "carotid arteries", "lower extremities",
    "heart", "lungs", "colon", "stomach", "pancreas", "prostate", "breast",
)
FINDINGS = (
    "no acute abnormality", "mild degenerative changes", "a small pleural effusion",
    "bibasilar atelectasis", "a right lower lobe infiltrate", "cardiomegaly",
    "mild hepatic steatosis", "cholelithiasis without cholecystitis", "a simple renal cyst",
    "a 6 mm pulmonary nodule", "moderate aortic stenosis", "left ventricular hypertrophy",
    "an ejection fraction of 35 percent", "an ejection fraction of 55 percent",
    "sinus rhythm", "sinus tachycardia", "atrial fibrillation with rapid ventricular response",
    "nonspecific st changes", "no evidence of thrombosis", "a nondisplaced fracture",
    "moderate joint space narrowing", "disc herniation at l4-l5", "diverticulosis",
    "two small tubular adenomas", "erosive esophagitis", "no malignancy identified",
)
LABS = (
    ("hemoglobin", "g/dL", 8.0, 16.5), ("hematocrit", "%", 25.0, 50.0),
    ("white blood cell count", "K/uL", 3.0, 18.0), ("platelets", "K/uL", 90.0, 450.0),
    ("sodium", "mmol/L", 126.0, 146.0), ("potassium", "mmol/L", 2.9, 5.8),
    ("chloride", "mmol/L", 95.0, 110.0), ("bicarbonate", "mmol/L", 18.0, 30.0),
    ("creatinine", "mg/dL", 0.5, 3.5), ("blood urea nitrogen", "mg/dL", 6.0, 60.0),
    ("glucose", "mg/dL", 65.0, 380.0), ("hemoglobin a1c", "%", 5.0, 12.5),
    ("tsh", "mIU/L", 0.1, 9.0), ("alt", "U/L", 8.0, 180.0), ("ast", "U/L", 10.0, 160.0),
    ("alkaline phosphatase", "U/L", 40.0, 300.0), ("total bilirubin", "mg/dL", 0.2, 4.0),
    ("albumin", "g/dL", 2.2, 5.0), ("troponin", "ng/mL", 0.0, 2.5), ("bnp", "pg/mL", 20.0, 2400.0),
    ("ldl cholesterol", "mg/dL", 45.0, 210.0), ("inr", "", 0.9, 3.8), ("lactate", "mmol/L", 0.5, 5.0),
    ("ferritin", "ng/mL", 8.0, 600.0), ("vitamin d", "ng/mL", 8.0, 60.0),
)
SPECIALTIES = (
    "cardiology", "nephrology", "endocrinology", "pulmonology", "gastroenterology", "neurology",
    "rheumatology", "oncology", "orthopedics", "urology", "dermatology", "psychiatry",
    "physical therapy", "primary care", "infectious disease", "hematology", "ophthalmology",
)
# Connective clinical prose, most frequent first (weighted Zipf-like when drawn as filler).
FILLER = _words(
    "the patient and of with to is was for no in on a at denies reports is without noted "
    "history currently has had presents today stable continues states improved unchanged "
    "recommended reviewed discussed given started increased decreased tolerated well symptoms "
    "prior daily bilateral mild moderate severe acute chronic normal likely possible recent "
    "follow up care plan visit clinic hospital admission discharge home family wife husband "
    "daughter son lives alone works retired smoker former never alcohol occasionally exercise "
    "walking diet education counseling risks benefits alternatives consent understood agrees "
    "examination alert oriented pleasant distress appears comfortable afebrile vitals blood "
    "pressure heart rate respiratory oxygen saturation room air lungs clear auscultation "
    "regular rhythm murmur edema tenderness palpation range motion strength sensation intact "
    "reflexes gait steady soft nontender nondistended bowel sounds present skin warm dry "
    "imaging laboratory results pending ordered repeat monitor titrate dose medication "
    "adherence side effects refill pharmacy insurance authorization scheduled weeks months "
    "return precautions worsening emergency department call office questions answered "
    "greater than less than approximately since last week month year ago episode episodes "
    "intermittent persistent worse better rest activity night morning evening associated"
)
_FILLER_CUM = list(accumulate(1.0 / (rank + 2) for rank in range(len(FILLER))))
_TYPE_NAMES = [name for name, _ in DOC_TYPES]
_TYPE_CUM = list(accumulate(weight for _, weight in DOC_TYPES))
_OCR_SWAPS = (("l", "1"), ("o", "0"), ("rn", "m"), ("m", "rn"), ("e", "c"), ("i", "l"), ("s", "5"),
              ("h", "b"), ("n", "h"), ("a", "o"))
# fmt: on
# Common ICD-10 codes (real code values; which document gets which is random).
ICD_CODES = (
    "E11.9",
    "I10",
    "J44.9",
    "I50.9",
    "N18.3",
    "E78.5",
    "J18.9",
    "K21.9",
    "F32.9",
    "M17.11",
    "I48.91",
    "E03.9",
    "G47.33",
    "J45.909",
    "D64.9",
    "E11.65",
    "I25.10",
    "N39.0",
    "M54.5",
    "R07.9",
)
_FIRST_DAY = date(2012, 1, 1)
_DAYS = 14 * 365


def mrn_of(patient: int) -> str:
    """A 7-digit MRN, unique per patient (7919 is coprime with 10**7), leading zeros included."""
    return f"{(patient * 7919 + 1_000_003) % 10_000_000:07d}"


def name_of(patient: int) -> str:
    rng = random.Random(patient * 31 + 7)
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def _sentence(rng: random.Random, heading: str) -> str:
    """One sentence, its shape chosen to suit the section it appears in."""
    pick = rng.random()
    if heading in ("MEDICATIONS:", "DISCHARGE INSTRUCTIONS:") and pick < 0.7:
        return f"{rng.choice(DRUGS).capitalize()} {rng.choice(DOSES)} mg {rng.choice(FREQUENCIES)}."
    if heading in ("LABORATORY DATA:",) and pick < 0.8:
        name, unit, lo, hi = rng.choice(LABS)
        return f"{name.capitalize()} {rng.uniform(lo, hi):.1f} {unit}".rstrip() + "."
    if heading in ("IMAGING:", "FINDINGS:", "IMPRESSION:", "PROCEDURE:") and pick < 0.7:
        return (
            f"{rng.choice(PROCEDURES).capitalize()} of the {rng.choice(ANATOMY)} "
            f"shows {rng.choice(FINDINGS)}."
        )
    if heading in ("ASSESSMENT:", "ASSESSMENT AND PLAN:", "PAST MEDICAL HISTORY:") and pick < 0.6:
        status = rng.choice(
            (
                "stable",
                "improving",
                "worsening",
                "well controlled",
                "uncontrolled",
                "newly diagnosed",
                "resolved",
                "chronic",
            )
        )
        return f"{rng.choice(DIAGNOSES).capitalize()}, {status}."
    pick = rng.random()
    if pick < 0.14:
        return (
            f"Patient reports {rng.choice(SYMPTOMS)} for {rng.randint(1, 12)} "
            f"{rng.choice(('days', 'weeks', 'months'))}."
        )
    if pick < 0.24:
        a, b, c = rng.sample(SYMPTOMS, 3)
        return f"Denies {a}, {b} or {c}."
    if pick < 0.34:
        return f"History of {rng.choice(DIAGNOSES)}."
    if pick < 0.44:
        return (
            f"Continue {rng.choice(DRUGS)} {rng.choice(DOSES)} mg {rng.choice(FREQUENCIES)} "
            f"for {rng.choice(DIAGNOSES)}."
        )
    if pick < 0.50:
        return f"Follow up with {rng.choice(SPECIALTIES)} in {rng.randint(1, 12)} weeks."
    if pick < 0.56:
        return f"{rng.choice(PROCEDURES).capitalize()} ordered to evaluate {rng.choice(SYMPTOMS)}."
    words = rng.choices(FILLER, cum_weights=_FILLER_CUM, k=rng.randint(6, 16))
    return " ".join(words).capitalize() + "."


def _ocr_noise(rng: random.Random, text: str) -> str:
    """Misread about one word in 200, as OCR does."""
    words = text.split(" ")
    for _ in range(max(0, int(rng.gauss(len(words) / 200, 0.7)))):
        i = rng.randrange(len(words))
        wrong, right = rng.choice(_OCR_SWAPS)
        if wrong in words[i]:
            words[i] = words[i].replace(wrong, right, 1)
    return " ".join(words)


def generate_doc(i: int, seed: int = SEED) -> IndexDocument:
    """Document number ``i`` (0-based) of the archive with this seed: about 300 words on 1-3 pages."""
    rng = random.Random(seed * 1_000_003 + i)
    patient = rng.randrange(i // 8 + 1)
    n_pages = rng.choices((1, 2, 3), weights=(40, 35, 25))[0]
    budget = max(120, min(480, int(rng.gauss(265, 55))))  # sections overshoot: ~300 words
    per_page = budget // n_pages
    pages: list[str] = []
    for page_no in range(n_pages):
        lines: list[str] = []
        words = 0
        if page_no == 0:
            lines.append(f"Patient: {name_of(patient)}   MRN: {mrn_of(patient)}")
        while words < per_page:
            heading = rng.choice(HEADINGS)
            lines.append(heading)
            section = [_sentence(rng, heading) for _ in range(rng.randint(2, 5))]
            body = " ".join(section)
            lines.append(body)
            words += body.count(" ") + 1 + heading.count(" ") + 1
        lines.append(f"Page {page_no + 1} of {n_pages}")
        pages.append(_ocr_noise(rng, "\n".join(lines)))
    doc_type = rng.choices(_TYPE_NAMES, cum_weights=_TYPE_CUM)[0]
    day = rng.randrange(_DAYS)
    return IndexDocument(
        doc_id=f"syn-{i:07d}",
        pages=pages,
        mrn=mrn_of(patient),
        patient_name=name_of(patient),
        doc_type=doc_type,
        date_of_service=_FIRST_DAY + timedelta(days=day),
        batch_id=f"B{i // BATCH_DOCS:05d}",
        encounter=f"E{patient:06d}-{day // 30:03d}",
        icd_codes=rng.sample(ICD_CODES, rng.choices((0, 1, 2, 3), weights=(20, 40, 25, 15))[0]),
    )


def generate(start: int, stop: int, seed: int = SEED) -> Iterator[IndexDocument]:
    """Documents ``start``..``stop-1``, one at a time."""
    for i in range(start, stop):
        yield generate_doc(i, seed)


class PageStore:
    """SQLite file standing in for the catalog: document metadata and page text, by doc id."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS docs (n INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, mrn TEXT,"
            " patient_name TEXT, doc_type TEXT, date_of_service TEXT, batch_id TEXT, pages TEXT,"
            " encounter TEXT, icd TEXT)"
        )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM docs").fetchone()[0])

    def fill(self, n_docs: int, seed: int = SEED, progress: bool = True) -> None:
        """Generate documents up to ``n_docs`` (keeps what is already there: same seed, same docs)."""
        have = len(self)
        t0 = time.perf_counter()
        for start in range(have, n_docs, 5_000):
            stop = min(n_docs, start + 5_000)
            self._db.executemany(
                "INSERT INTO docs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (
                        int(doc.doc_id[4:]),
                        doc.doc_id,
                        doc.mrn,
                        doc.patient_name,
                        doc.doc_type,
                        doc.date_of_service.isoformat() if doc.date_of_service else None,
                        doc.batch_id,
                        PAGE_SEP.join(doc.pages),
                        doc.encounter,
                        " ".join(doc.icd_codes),
                    )
                    for doc in generate(start, stop, seed)
                ),
            )
            self._db.commit()
            if progress:
                rate = (stop - have) / (time.perf_counter() - t0)
                print(f"[synth] {stop}/{n_docs} documents ({rate:.0f}/s)", file=sys.stderr, flush=True)

    def docs(self, start: int, stop: int) -> Iterator[IndexDocument]:
        """Documents ``start``..``stop-1`` as the indexer would receive them from the catalog."""
        rows = self._db.execute(
            "SELECT doc_id, mrn, patient_name, doc_type, date_of_service, batch_id, pages, encounter, icd"
            " FROM docs"
            " WHERE n >= ? AND n < ? ORDER BY n",
            (start, stop),
        )
        for doc_id, mrn, name, doc_type, dos, batch_id, pages, encounter, icd in rows:
            yield IndexDocument(
                doc_id=doc_id,
                pages=pages.split(PAGE_SEP),
                mrn=mrn,
                patient_name=name,
                doc_type=doc_type,
                date_of_service=date.fromisoformat(dos) if dos else None,
                batch_id=batch_id,
                encounter=encounter,
                icd_codes=icd.split() if icd else [],
            )

    def load_pages(self, doc_id: str) -> Sequence[str]:
        """A ``PageLoader``: page texts of one document; ``LookupError`` when unknown."""
        n = int(doc_id[4:]) if doc_id.startswith("syn-") and doc_id[4:].isdigit() else -1
        row = self._db.execute("SELECT pages FROM docs WHERE n = ?", (n,)).fetchone()
        if row is None:
            raise LookupError(doc_id)
        return row[0].split(PAGE_SEP)

    def close(self) -> None:
        self._db.close()


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--out", type=Path, default=Path("synth-archive.sqlite"))
    args = ap.parse_args(argv)
    store = PageStore(args.out)
    try:
        store.fill(args.docs, args.seed)
    finally:
        store.close()


if __name__ == "__main__":
    main()
