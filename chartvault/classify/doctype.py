"""Document type of a chart page from its text: title rules first, then weighted keyword evidence.

Rule-based on purpose (first version): every decision can be traced to a printed title or to headings and
phrases that HIM staff would point at. A trained model can later replace the keyword part while keeping
``classify_text``'s contract.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from chartvault.classify.types import DOC_TYPES, DocTypePrediction

__all__ = ["classify_text"]

# A title is looked for in the first lines of the page (after hospital name, address and patient label).
_TITLE_SEARCH_LINES = 22
_TITLE_WEIGHT = 14.0  # a printed title decides unless the body contradicts it strongly
_TITLE_IN_TEXT_WEIGHT = 3.0  # the same words as a heading ('DISCHARGE SUMMARY:') further down
_OTHER_BASELINE = 1.2  # raw score of 'other': below it nothing recognisable was printed
_TEMPERATURE = 2.5  # softmax temperature over raw scores

_PREFIX = r"(?:[A-Z][A-Z/&\-]*[ ]){0,3}"  # 'CARDIOLOGY CONSULTATION', 'BRIEF OPERATIVE NOTE'
_SUFFIX = r"(?:[ ](?:NOTE|REPORT|RECORD|FORM|SHEET|VISIT|SUMMARY|EXAMINATION|EXAM))?"

# (doc_type, full-line title pattern). Matched case-insensitively against a whole short line.
_TITLES: list[tuple[str, str]] = [
    ("discharge_summary", _PREFIX + r"(?:DISCHARGE|DEATH|TRANSFER)[ ]SUMMARY(?:[ ]REPORT)?"),
    ("discharge_summary", r"(?:HOSPITAL[ ])?DISCHARGE[ ](?:NOTE|RECORD|REPORT)"),
    ("operative_report", _PREFIX + r"(?:OPERATIVE|OPERATION|SURGICAL|SURGERY|OP|PROCEDURE)[ ](?:NOTE|REPORT|RECORD)"),
    ("operative_report", r"REPORT[ ]OF[ ](?:OPERATION|PROCEDURE|SURGERY)"),
    ("operative_report", r"(?:BRIEF[ ])?OP(?:ERATIVE)?[ ]NOTE"),
    ("history_and_physical", _PREFIX + r"HISTORY[ ]?(?:AND|&)[ ]?PHYSICAL" + _SUFFIX),
    ("history_and_physical", _PREFIX + r"H[ ]?(?:&|AND)[ ]?P" + _SUFFIX),
    ("history_and_physical", r"(?:ADMISSION|ADMIT|ADMITTING)[ ](?:NOTE|HISTORY)"),
    ("consult_note", _PREFIX + r"CONSULT(?:ATION)?(?:[ ](?:NOTE|REPORT|REQUEST))?"),
    ("consult_note", _PREFIX + r"CONSULTATIVE[ ](?:NOTE|REPORT|EVALUATION)"),
    ("radiology_report", _PREFIX + r"(?:RADIOLOGY|IMAGING|X-?RAY|CT|MRI|ULTRASOUND|SONOGRAPHY|MAMMOGRA(?:M|PHY)|"
     r"NUCLEAR[ ]MEDICINE|FLUOROSCOPY)[ ](?:REPORT|RESULTS?|EXAMINATION|CONSULTATION)"),  # fmt: skip
    ("radiology_report", r"(?:DIAGNOSTIC[ ])?(?:RADIOLOGY|IMAGING)(?:[ ]REPORT)?"),
    ("progress_note", _PREFIX + r"(?:PROGRESS|CLINIC|OFFICE|FOLLOW[- ]?UP|SOAP|VISIT|OUTPATIENT)[ ]NOTES?"),
    ("progress_note", r"(?:OFFICE|CLINIC|FOLLOW[- ]?UP|RETURN)[ ]VISIT"),
    ("progress_note", r"PROGRESS[ ]NOTES?|INTERVAL[ ]NOTE"),
    ("ed_note", r"(?:EMERGENCY|ER|ED)(?:[ ](?:DEPARTMENT|DEPT\.?|ROOM|MEDICINE))?[ ](?:PHYSICIAN[ ]|PROVIDER[ ]|"
     r"TREATMENT[ ]|VISIT[ ])?(?:NOTE|REPORT|RECORD|SUMMARY|DOCUMENTATION|CHART)"),  # fmt: skip
    ("ed_note", r"EMERGENCY[ ](?:DEPARTMENT|ROOM)"),
    ("lab_report", _PREFIX + r"(?:LABORATORY|LAB)[ ](?:REPORT|RESULTS?|SUMMARY|DATA)"),
    ("lab_report", r"CUMULATIVE[ ](?:LAB(?:ORATORY)?[ ])?(?:REPORT|SUMMARY)|CHEMISTRY|HEMATOLOGY|URINALYSIS"),
    ("pathology_report", _PREFIX + r"(?:PATHOLOGY|CYTOLOGY|AUTOPSY|HISTOPATHOLOGY|BIOPSY)[ ](?:REPORT|CONSULTATION)"),
    ("pathology_report", r"(?:SURGICAL[ ])?PATHOLOGY"),
    ("consent", _PREFIX + r"CONSENT(?:[ ](?:FORM|TO|FOR)[A-Z ,/&\-]*)?"),
    ("consent", r"CONDITIONS[ ]OF[ ](?:ADMISSION|TREATMENT|SERVICE)"),
    ("advance_directive", r"(?:ADVANCE[ ](?:HEALTH[ ]CARE[ ])?DIRECTIVES?|LIVING[ ]WILL|HEALTH[ ]?CARE[ ]PROXY|POLST|MOLST|"
     r"DURABLE[ ]POWER[ ]OF[ ]ATTORNEY[A-Z ]*|DO[ ]NOT[ ]RESUSCITATE[A-Z ]*|DNR[ ]ORDER)"),  # fmt: skip
    ("correspondence", r"(?:FAX[ ]COVER(?:[ ]SHEET)?|FACSIMILE[ ]TRANSMITTAL|(?:[A-Z]+[ ]){0,2}LETTER|MEMORANDUM)"),
    ("billing", r"(?:EXPLANATION[ ]OF[ ]BENEFITS|ITEMIZED[ ](?:STATEMENT|BILL)|PATIENT[ ]STATEMENT|STATEMENT[ ]OF[ ]"
     r"ACCOUNT|UB-?04|CMS-?1500|HCFA-?1500|BILLING[ ]STATEMENT|INVOICE)"),  # fmt: skip
    ("roi_authorization", r"(?:AUTHORIZATION[ ](?:FOR|TO)[ ](?:THE[ ])?(?:RELEASE|USE|DISCLOS)[A-Z ,/&\-]*|"
     r"REQUEST[ ]FOR[ ](?:MEDICAL[ ])?RECORDS|RELEASE[ ]OF[ ]INFORMATION[A-Z ]*)"),  # fmt: skip
    ("legal", r"(?:SUBPOENA(?:[ ]DUCES[ ]TECUM)?|COURT[ ]ORDER|AFFIDAVIT[A-Z ]*|NOTICE[ ]OF[ ]DEPOSITION|"
     r"LETTERS?[ ]OF[ ]GUARDIANSHIP|IN[ ]THE[ ][A-Z ]*COURT[A-Z ,]*)"),  # fmt: skip
    # Chart sections without a type of their own: recognised so they are not forced into a clinical type.
    ("other", r"(?:FACE[ ]SHEET|ADMISSION[ ]RECORD|REGISTRATION(?:[ ]FORM)?|(?:PHYSICIAN'?S?|DOCTOR'?S?|ADMISSION|"
     r"POST-?OP(?:ERATIVE)?)[ ]ORDERS|ORDER[ ]SHEET|MEDICATION[ ]ADMINISTRATION[ ]RECORD|NURS(?:ING|ES'?)[ ]"
     r"(?:NOTES?|ASSESSMENT)|ANESTHESIA[ ]RECORD|DEATH[ ]CERTIFICATE)"),  # fmt: skip
]
_TITLE_RES = [(t, re.compile(r"[ ]*" + p + r"[ ]*[:.]?[ ]*", re.I)) for t, p in _TITLES]


@dataclass(frozen=True, slots=True)
class _Rule:
    doc_type: str
    weight: float
    rx: re.Pattern[str]


def _heading(words: str) -> str:
    """A section heading: at a line start (or after ',' in run-together transcriptions) and before ':'."""
    return r"(?:^|(?<=[,.])|(?<=[ ]{2}))[ \t]*(?:" + words + r")[ \t]*[:;]"


def _h(doc_type: str, weight: float, words: str) -> _Rule:
    return _Rule(doc_type, weight, re.compile(_heading(words), re.I | re.M))


def _p(doc_type: str, weight: float, phrase: str, *, case: bool = False) -> _Rule:
    flags = re.M if case else re.I | re.M
    return _Rule(doc_type, weight, re.compile(r"(?<![A-Za-z])(?:" + phrase + r")(?![A-Za-z])", flags))


# Weighted evidence from the A3 taxonomy, checked against labelled report bodies (dev_texts.csv). Each rule
# counts once per page: presence, not frequency, so one long section cannot drown the rest.
_RULES: list[_Rule] = [
    # Discharge summary
    _h("discharge_summary", 4.0, r"HOSPITAL[ ]COURSE|COURSE[ ]IN[ ](?:THE[ ])?HOSPITAL|BRIEF[ ]HOSPITAL[ ]COURSE"),
    _h("discharge_summary", 4.0, r"DISCHARGE[ ]DIAGNOS[IE]S|FINAL[ ]DISCHARGE[ ]DIAGNOS[IE]S"),
    _h("discharge_summary", 3.0, r"DISCHARGE[ ](?:MEDICATIONS?|INSTRUCTIONS|CONDITION|PLAN|DISPOSITION|DATE|"
       r"FOLLOW[- ]?UP|DIET|ACTIVITY)|CONDITION[ ](?:ON|AT|UPON)[ ]DISCHARGE|MEDICATIONS[ ](?:ON|AT|AND[ ]ADVICE[ ]ON)"
       r"[ ]DISCHARGE"),  # fmt: skip
    _h("discharge_summary", 2.0, r"(?:DATE[ ]OF[ ])?(?:ADMISSION|ADMIT)[ ]DATE|DATE[ ]OF[ ]ADMISSION|DATE[ ]OF[ ]DISCHARGE"),
    _h("discharge_summary", 1.5, r"ADMI(?:SSION|TTING)[ ]DIAGNOS[IE]S"),
    _p("discharge_summary", 2.5, r"hospital[ ]course|hospital[ ]stay|during[ ](?:her|his|the)[ ](?:hospital|hospitalization)"),
    _p("discharge_summary", 2.0, r"(?:was|is|being|be)[ ]discharged|discharged[ ](?:home|to)|on[ ]discharge|"
       r"at[ ](?:the[ ]time[ ]of[ ])?discharge|upon[ ]discharge|prior[ ]to[ ]discharge|day[ ]of[ ]discharge"),  # fmt: skip
    _p("discharge_summary", 1.0, r"was[ ]admitted|admitted[ ](?:to|for|with)|hospitalization"),
    _p("discharge_summary", 0.8, r"postoperative[ ]day|post-op[ ]day|POD[ ]#?\d"),
    _p("discharge_summary", 3.0, r"discharge[ ]summary"),
    # Operative / procedure report
    _h("operative_report", 4.0, r"PRE-?[ ]?OPERATIVE[ ]DIAGNOS[IE]S|POST-?[ ]?OPERATIVE[ ]DIAGNOS[IE]S|PRE-?OP[ ]DIAGNOS[IE]S|"
       r"POST-?OP[ ]DIAGNOS[IE]S|PRE-?PROCEDURE[ ]DIAGNOS[IE]S|POST-?PROCEDURE[ ]DIAGNOS[IE]S"),  # fmt: skip
    _h("operative_report", 3.5, r"(?:NAME[ ]OF[ ]|TITLE[ ]OF[ ])?(?:PROCEDURES?|OPERATIONS?)[ ](?:PERFORMED|DONE)|"
       r"(?:NAME|TITLE)[ ]OF[ ](?:PROCEDURES?|OPERATIONS?)|OPERATIVE[ ]PROCEDURES?|DESCRIPTION[ ]OF[ ](?:THE[ ])?"
       r"(?:PROCEDURES?|OPERATIONS?)|PROCEDURE[ ]IN[ ]DETAIL|DETAILS?[ ]OF[ ](?:THE[ ])?(?:PROCEDURE|OPERATION)|"
       r"(?:OPERATIVE|OPERATION|PROCEDURE)[ ](?:DETAILS|DESCRIPTION|TECHNIQUE|NOTE|REPORT)"),  # fmt: skip
    _h("operative_report", 3.0, r"ESTIMATED[ ]BLOOD[ ]LOSS|EBL|BLOOD[ ]LOSS|TOURNIQUET[ ]TIME|SPECIMENS?(?:[ ]REMOVED)?|"
       r"DRAINS?|IMPLANTS?|SURGEON|ASSISTANTS?|ASSISTANT[ ]SURGEON|FIRST[ ]ASSISTANT|"
       r"(?:INTRA-?)?OPERATIVE[ ]FINDINGS|FLUIDS|(?:IV[ ])?FLUIDS[ ]GIVEN|URINE[ ]OUTPUT|COUNTS"),  # fmt: skip
    _h("operative_report", 2.5, r"ANESTHESIA|TYPE[ ]OF[ ]ANESTHESIA|ANESTHETIC|ANESTHESIOLOGIST|COMPLICATIONS|"
       r"INDICATIONS?(?:[ ]FOR[ ](?:THE[ ])?(?:PROCEDURE|OPERATION|SURGERY))?|PROCEDURES?|OPERATIONS?|DISPOSITION"),  # fmt: skip
    _p("operative_report", 3.0, r"prepped[ ]and[ ]draped|prepped[ ]and[ ]draped|draped[ ]in[ ](?:the[ ])?(?:usual|standard)|"
       r"(?:usual|standard|normal)[ ]sterile[ ]fashion|time[- ]?out"),  # fmt: skip
    _p("operative_report", 2.5, r"(?:brought|taken|wheeled)[ ](?:back[ ])?to[ ]the[ ](?:operating|OR|procedure|"
       r"endoscopy|cath(?:eterization)?)|operating[ ](?:room|table)|recovery[ ]room|PACU|tolerated[ ]the[ ]"
       r"(?:procedure|operation|surgery)"),  # fmt: skip
    _p("operative_report", 2.0, r"incision|sutures?|Vicryl|Monocryl|Prolene|nylon|staples|cautery|Bovie|"
       r"dissect(?:ed|ion)|retractor|trocar|irrigated|hemostasis|closed[ ]in[ ]layers|skin[ ]was[ ]closed"),  # fmt: skip
    _p("operative_report", 1.5, r"general[ ](?:endotracheal[ ])?anesthesia|under[ ](?:general|local|spinal|MAC|IV)|"
       r"endotracheal|intubated|LMA|lidocaine|Marcaine|sedation"),  # fmt: skip
    _p("operative_report", 1.0, r"scope|endoscope|catheter|guidewire|sheath|needle|specimen"),
    # Radiology
    _h("radiology_report", 3.0, r"EXAM(?:INATION)?|STUDY|PROCEDURE[ ]DATE|EXAM[ ]DATE|TYPE[ ]OF[ ]EXAM"),
    _h("radiology_report", 3.5, r"TECHNIQUE|COMPARISON|COMPARISONS|PRIOR[ ]STUDIES|CONTRAST|VIEWS|"
       r"REASON[ ]FOR[ ](?:THE[ ])?(?:EXAM(?:INATION)?|STUDY)|CLINICAL[ ](?:HISTORY|INDICATIONS?|INFORMATION|DATA)"),  # fmt: skip
    _h("radiology_report", 2.0, r"FINDINGS|IMPRESSIONS?|CONCLUSIONS?|INDICATIONS?"),
    _p("radiology_report", 2.5, r"(?:axial|coronal|sagittal)[ ](?:images|sections|views|T1|T2|plane)|images[ ]"
       r"(?:were|are)[ ](?:obtained|acquired)|without[ ](?:and[ ]with[ ])?(?:IV[ ])?contrast|with[ ](?:and[ ]without[ ])?"
       r"(?:IV[ ])?contrast|(?:AP|PA|lateral|oblique)[ ](?:and[ ]lateral[ ])?views?|two[ ]views|single[ ]view|"
       r"Doppler|sonographic(?:ally)?|echogenic(?:ity)?|hypoechoic|hyperechoic|attenuation|enhancement|"
       r"signal[ ]intensity|radiologist|mm[ ]in[ ](?:size|diameter)|cm[ ]in[ ](?:size|diameter)"),  # fmt: skip
    _p("radiology_report", 1.5, r"no[ ](?:acute|focal|significant)[ ][a-z]+[ ]?[a-z]*[ ]?(?:abnormality|process|"
       r"findings?|disease|lesion|fracture|mass)|is[ ]unremarkable|are[ ]unremarkable|within[ ]normal[ ]limits[ ]in"
       r"[ ]size|normal[ ]in[ ](?:size|caliber|appearance)|visualized|demonstrates?|there[ ]is[ ]no[ ]evidence"),  # fmt: skip
    _p("radiology_report", 1.0, r"CT|MRI|MRA|x-?ray|radiograph(?:s|y)?|ultrasound|mammogra(?:m|phy)|fluoroscop(?:y|ic)|"
       r"scan|angiogra(?:m|phy)|echocardiogra(?:m|phy)|nuclear"),  # fmt: skip
    # Consultation
    _h("consult_note", 5.0, r"REASON[ ]FOR[ ](?:THE[ ])?(?:CONSULT(?:ATION)?|REFERRAL)|CONSULT(?:ATION)?[ ]REQUESTED[ ]BY|"
       r"(?:REQUESTING|REFERRING)[ ](?:PHYSICIAN|PROVIDER|DOCTOR)|REFERRED[ ]BY|CONSULTING[ ]PHYSICIAN"),  # fmt: skip
    _p("consult_note", 3.5, r"(?:asked|requested)[ ]to[ ](?:see|evaluate)|(?:seen|evaluated)[ ](?:today[ ])?(?:in|at[ ]the)"
       r"[ ](?:request|consultation)|at[ ]the[ ]request[ ]of|in[ ]consultation|for[ ](?:a[ ])?consultation|consulted[ ]"
       r"(?:for|by|to|regarding)|referred[ ](?:to[ ](?:me|us|our)|by|for)|thank[ ]you[ ]for[ ](?:this|the|allowing|"
       r"involving)"),  # fmt: skip
    _p("consult_note", 2.5, r"consultation|consult"),
    _h("consult_note", 1.5, r"RECOMMENDATIONS?|SUGGESTIONS"),
    _p("consult_note", 1.0, r"we[ ]will[ ]follow|will[ ]follow[ ](?:along|with[ ]you)|would[ ]recommend|I[ ]recommend|"
       r"recommend(?:ed|ations?)"),  # fmt: skip
    # Correspondence
    _p("correspondence", 6.0, r"Dear[ ](?:Dr|Doctor|Mr|Mrs|Ms|Sir|Madam|Colleague|Sample|[A-Z][a-z]+)|Sincerely|"
       r"Yours[ ](?:truly|sincerely)|(?:Best|Kind|Warm)[ ]regards|Respectfully[ ]yours", case=True),  # fmt: skip
    _p("correspondence", 3.0, r"thank[ ]you[ ]for[ ](?:your[ ](?:kind[ ])?referral|referring|(?:the[ ])?(?:kind[ ])?"
       r"referral|sending|allowing[ ]me)|I[ ]had[ ]the[ ]pleasure|your[ ]patient|this[ ]letter|please[ ](?:do[ ]not"
       r"[ ]hesitate|feel[ ]free)|(?:call|contact)[ ](?:me|my[ ]office)|keep[ ]you[ ](?:informed|updated|posted)"),  # fmt: skip
    _p("correspondence", 2.0, r"^[ \t]*(?:RE|Re)[ ]?:|^[ \t]*(?:cc|CC)[ ]?:|enclosed|to[ ]whom[ ]it[ ]may[ ]concern",
       case=True),  # fmt: skip
    # Progress note (SOAP)
    _h("progress_note", 3.5, r"SUBJECTIVE|S"),
    _h("progress_note", 3.0, r"OBJECTIVE|O"),
    _h("progress_note", 1.5, r"ASSESSMENT|A|ASSESSMENT/PLAN|A/P|P"),
    _h("progress_note", 3.5, r"INTERVAL[ ](?:HISTORY|EVENTS)|SINCE[ ]LAST[ ]VISIT|PROGRESS"),
    _p("progress_note", 2.5, r"(?:returns|returned|comes[ ]back|is[ ]back|presents|is[ ]here|came[ ]in|comes[ ]in)"
       r"[ ](?:today[ ])?(?:for[ ](?:a[ ])?(?:follow[- ]?up|recheck|re-?evaluation)|to[ ](?:the[ ])?(?:clinic|office))|"
       r"follow[- ]?up[ ](?:visit|appointment|evaluation)|(?:last|previous|prior)[ ](?:visit|office[ ]visit|clinic[ ]"
       r"visit|appointment)|since[ ](?:his|her|the)[ ]last[ ](?:visit|appointment)|(?:doing|feeling)[ ](?:well|better|"
       r"much[ ]better|a[ ]bit[ ]better|fine)|recheck|here[ ]for|for[ ]follow[- ]?up"),  # fmt: skip
    _p("progress_note", 1.0, r"follow[- ]?up|clinic|office"),
    _p("progress_note", 1.0, r"continue[ ](?:current|the[ ]same|with)|no[ ]new[ ]complaints|overnight|today"),
    # History and physical
    _h("history_and_physical", 2.5, r"CHIEF[ ]COMPLAINTS?|CC"),
    _h("history_and_physical", 2.0, r"FAMILY[ ]HISTORY|FH|FAMILY[ ]MEDICAL[ ]HISTORY"),
    _h("history_and_physical", 2.0, r"SOCIAL[ ]HISTORY|SH"),
    _h("history_and_physical", 1.0, r"PAST[ ]MEDICAL[ ]HISTORY|PMH|PAST[ ]SURGICAL[ ]HISTORY|PSH|ALLERGIES|"
       r"MEDICATIONS|CURRENT[ ]MEDICATIONS|HOME[ ]MEDICATIONS"),  # fmt: skip
    _h("history_and_physical", 1.5, r"REVIEW[ ]OF[ ]SYSTEMS|ROS|PHYSICAL[ ]EXAM(?:INATION)?|PE|HEENT|"
       r"HISTORY[ ]OF[ ](?:THE[ ])?PRESENT[ ]ILLNESS|HPI|ASSESSMENT[ ]AND[ ]PLAN|IMPRESSION[ ]AND[ ]PLAN"),  # fmt: skip
    _p("history_and_physical", 2.5, r"will[ ]be[ ]admitted|admit[ ](?:to|him|her|the[ ]patient)|(?:being|is)[ ]admitted|"
       r"admission[ ](?:for|to)|plan[ ]to[ ]admit|(?:is|was)[ ]admitted[ ](?:to|for)"),  # fmt: skip
    # Emergency department
    _p("ed_note", 4.0, r"emergency[ ](?:room|department|dept)|ER[ ]course|ED[ ]course|in[ ]the[ ](?:ER|ED)|to[ ]the[ ]"
       r"(?:ER|ED)|triage|(?:brought|transported)[ ](?:in[ ])?by[ ](?:ambulance|EMS|paramedics|squad|police)|"
       r"(?:EMS|paramedics|ambulance)"),  # fmt: skip
    _h("ed_note", 3.5, r"(?:ER|ED|EMERGENCY[ ](?:DEPARTMENT|ROOM))[ ]COURSE|MEDICAL[ ]DECISION[ ]MAKING|MDM|"
       r"(?:FINAL|CLINICAL|ED|ER)[ ](?:DIAGNOS[IE]S|IMPRESSIONS?)|DISPOSITION|TIME[ ]SEEN|MODE[ ]OF[ ]ARRIVAL|"
       r"TRIAGE|NURSING[ ]NOTES?"),  # fmt: skip
    _p("ed_note", 1.5, r"discharged[ ]home|sent[ ]home|return[ ]to[ ]the[ ](?:ER|ED|emergency)|return[ ]if|"
       r"(?:warning|return)[ ]precautions|poison[ ]control|(?:motor[ ]vehicle|car)[ ](?:accident|collision)|MVA|MVC|"
       r"laceration|fell|fall|injury|acute[ ]distress|differential"),  # fmt: skip
    # Laboratory
    _h("lab_report", 4.0, r"REFERENCE[ ](?:RANGE|INTERVAL|VALUES)|REF[ ]RANGE|COLLECTED|RECEIVED|REPORTED|PERFORMING[ ]"
       r"(?:LAB(?:ORATORY)?|SITE)|SPECIMEN[ ](?:TYPE|SOURCE|COLLECTED)|ORDERING[ ](?:PHYSICIAN|PROVIDER)|CLIA"),  # fmt: skip
    _p("lab_report", 3.0, r"reference[ ](?:range|interval)|CLIA[ ]?#?|abnormal[ ]flag|result[ ]flag|(?:mg/dL|mmol/L|"
       r"g/dL|U/L|mEq/L|10\^?3/uL|K/uL)[ \t]+[\d.]+[ \t]*-[ \t]*[\d.]+"),  # fmt: skip
    _p("lab_report", 1.0, r"CBC|BMP|CMP|hemoglobin|hematocrit|platelets|WBC|creatinine|BUN|glucose|sodium|"
       r"potassium|urinalysis|culture"),  # fmt: skip
    # Pathology
    _h("pathology_report", 4.5, r"GROSS[ ](?:DESCRIPTION|EXAMINATION)|MICROSCOPIC(?:[ ](?:DESCRIPTION|EXAMINATION))?|"
       r"FROZEN[ ]SECTION(?:[ ]DIAGNOSIS)?|SPECIMENS?[ ]RECEIVED|SYNOPTIC[ ]REPORT|IMMUNOHISTOCHEM(?:ISTRY|ICAL)[A-Z ]*"),  # fmt: skip
    _p("pathology_report", 3.0, r"received[ ](?:fresh|in[ ]formalin)|submitted[ ](?:entirely|in[ ]toto|in[ ]cassettes?)|"
       r"cassettes?|paraffin|representative[ ]sections|margins?[ ](?:are|is)[ ](?:free|negative|involved)|"
       r"pathologist|histologic(?:al)?[ ]grade|tumor[ ]size"),  # fmt: skip
    # Consent
    _p("consent", 5.0, r"informed[ ]consent[ ](?:form|for)|consent[ ](?:to|for)[ ](?:treatment|surgery|procedure|"
       r"operation|anesthesia|transfusion|admission)|I[ ](?:hereby[ ])?(?:consent|authorize[ ]Dr)|risks,?[ ]benefits,?"
       r"[ ]and[ ]alternatives|conditions[ ]of[ ]admission"),  # fmt: skip
    _h("consent", 3.0, r"WITNESS|INTERPRETER|SIGNATURE[ ]OF[ ](?:PATIENT|WITNESS)|PATIENT[ ]SIGNATURE|RELATIONSHIP[ ]TO"
       r"[ ]PATIENT"),  # fmt: skip
    _p("consent", 1.5, r"I[ ]understand[ ]that|I[ ]acknowledge|(?:have[ ]been|was)[ ](?:informed|explained)|"
       r"no[ ]guarantee"),  # fmt: skip
    # Advance directive
    _p("advance_directive", 6.0, r"advance[ ](?:health[ ]care[ ])?directive|living[ ]will|health[ ]?care[ ]proxy|"
       r"durable[ ]power[ ]of[ ]attorney[ ]for[ ]health[ ]?care|POLST|MOLST|(?:health[ ]?care|medical)[ ]"
       r"(?:agent|surrogate|power[ ]of[ ]attorney)"),  # fmt: skip
    _p("advance_directive", 3.0, r"life[- ]sustaining[ ](?:treatment|procedures)|terminal[ ]condition|persistent"
       r"[ ]vegetative|artificial(?:ly)?[ ](?:nutrition|hydration)|do[ ]not[ ]resuscitate|DNR|full[ ]code|"
       r"comfort[ ]measures|my[ ]wishes"),  # fmt: skip
    # Billing
    _p("billing", 6.0, r"explanation[ ]of[ ]benefits|this[ ]is[ ]not[ ]a[ ]bill|itemized[ ](?:statement|bill)|"
       r"UB-?04|CMS-?1500|HCFA-?1500"),  # fmt: skip
    _h("billing", 3.0, r"CLAIM[ ](?:#|NO\.?|NUMBER)|AMOUNT[ ](?:DUE|BILLED|PAID|ALLOWED)|BALANCE(?:[ ]DUE)?|TOTAL[ ]CHARGES|"
       r"PATIENT[ ]RESPONSIBILITY|DEDUCTIBLE|CO-?PAY(?:MENT)?|CO-?INSURANCE|GUARANTOR|SUBSCRIBER|POLICY[ ](?:#|NO)|"
       r"GROUP[ ](?:#|NO)|PAYER|INSURANCE|CPT|REVENUE[ ]CODE|HCPCS"),  # fmt: skip
    _p("billing", 2.0, r"allowed[ ]amount|amount[ ]due|patient[ ]responsibility|deductible|co-?pay(?:ment)?|"
       r"(?:total|itemized)[ ]charges|adjustments?|write-?off|statement[ ]date|pay[ ]this[ ]amount|remit"),  # fmt: skip
    # ROI authorization
    _p("roi_authorization", 6.0, r"authoriz(?:ation|e)[ ](?:for|to)[ ](?:the[ ])?(?:release|use|disclos)|release[ ]of"
       r"[ ](?:medical[ ])?(?:information|records)|protected[ ]health[ ]information|this[ ]authorization[ ]"
       r"(?:expires|will[ ]expire)|(?:I[ ]may|right[ ]to)[ ]revoke|re-?disclos(?:ed|ure)"),  # fmt: skip
    _p("roi_authorization", 2.5, r"HIPAA|45[ ]CFR|purpose[ ]of[ ](?:the[ ])?(?:disclosure|release|request)|"
       r"information[ ]to[ ]be[ ](?:released|disclosed)|expiration[ ]date|psychotherapy[ ]notes"),  # fmt: skip
    # Legal
    _p("legal", 6.0, r"subpoena|duces[ ]tecum|court[ ]order|custodian[ ]of[ ]records|notice[ ]of[ ]deposition|"
       r"letters[ ]of[ ]guardianship|in[ ]the[ ](?:[A-Z][a-z]+[ ]){0,4}court[ ]of|superior[ ]court|district[ ]court|"
       r"circuit[ ]court"),  # fmt: skip
    _p("legal", 3.0, r"plaintiffs?|defendants?|case[ ](?:no\.?|number|#)|docket|affidavit|attorney[ ]for|"
       r"hereby[ ]commanded|notary[ ]public|sworn|under[ ]penalty[ ]of[ ]perjury"),  # fmt: skip
]

# Lines of the patient label / header / footer: printed on every page whatever the type, so they must not
# vote ('ADMIT DATE:' would otherwise count for H&P, 'Encounter:' for others).
_LABEL_LINE = re.compile(
    r"(?i)(?:\bMRN\b|\bMR[ ]?#|Med[ ]Rec|\bD\.?O\.?B\b|Birth[ ]?Date|\bACCT\b|Account[ ]?#|\bFIN\b|\bENC\b|Encounter[ ]?:|"
    r"VISIT[ ]?#|Date[ ]of[ ]Service|\bDOS\b|ADMIT[ ]DATE|^\s*(?:PATIENT|NAME|Patient[ ]Name)[ ]?:|^\s*(?:ATTENDING|"
    r"PHYSICIAN)[ ]?:|\(continued\)|Page[ ]\d+[ ]of[ ]\d+|^\s*Tel\b|\bFax[ ]\(|CONFIDENTIAL)"
)
_HEADER_ZONE = 14


def _strip_label_lines(lines: list[str]) -> list[str]:
    """Drop the patient-label, header and footer lines so only the report itself is scored."""
    n = len(lines)
    return [ln for i, ln in enumerate(lines) if not ((i < _HEADER_ZONE or i >= n - 3) and _LABEL_LINE.search(ln))]


def _title_votes(lines: list[str]) -> dict[str, float]:
    """A short line near the top that is entirely a document title ('DISCHARGE SUMMARY')."""
    votes: dict[str, float] = {}
    for ln in lines[:_TITLE_SEARCH_LINES]:
        s = ln.strip()
        if not s or len(s) > 60 or len(s.split()) > 8:
            continue
        letters = [c for c in s if c.isalpha()]
        if not letters or sum(c.isupper() for c in letters) < 0.8 * len(letters):
            continue  # titles are printed in capitals; this also skips hospital names and prose
        for doc_type, rx in _TITLE_RES:
            if rx.fullmatch(s):
                votes[doc_type] = max(votes.get(doc_type, 0.0), _TITLE_WEIGHT)
                break
        if votes:
            break  # the first title line wins; later ones are section headings
    return votes


def _softmax(scores: dict[str, float]) -> dict[str, float]:
    top = max(scores.values())
    exps = {k: math.exp((v - top) / _TEMPERATURE) for k, v in scores.items()}
    total = sum(exps.values())
    return {k: v / total for k, v in exps.items()}


def raw_scores(text: str) -> dict[str, float]:
    """Unnormalised evidence per type (title + keyword weights); exposed for tuning and debugging."""
    scores = dict.fromkeys(DOC_TYPES, 0.0)
    scores["other"] = _OTHER_BASELINE
    if not text or not text.strip():
        return scores
    lines = _strip_label_lines(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    for doc_type, w in _title_votes(lines).items():
        scores[doc_type] += w
    body = "\n".join(lines)
    for rule in _RULES:
        if rule.rx.search(body):
            scores[rule.doc_type] += rule.weight
    return scores


def classify_text(text: str, hint: str | None = None) -> DocTypePrediction:
    """Classify one page (or a whole document's text) into one of DOC_TYPES.

    ``hint`` is a type already known from the scanning manifest (cover sheet, batch metadata); a valid one
    wins with confidence 1.0 because staff assigned it. Otherwise the printed title decides when there is
    one, and weighted headings/phrases when there is not; 'other' when nothing recognisable scores.
    """
    if hint is not None and hint in DOC_TYPES:
        return DocTypePrediction(hint, 1.0, {t: (1.0 if t == hint else 0.0) for t in DOC_TYPES})
    probs = _softmax(raw_scores(text))
    best = max(DOC_TYPES, key=lambda t: (probs[t], t == "other"))
    return DocTypePrediction(best, round(probs[best], 4), {k: round(v, 4) for k, v in probs.items()})
