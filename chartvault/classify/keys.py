"""The keys labels print before a value: every synonym of the domain notes (A4), as patterns.

MRN, MR#, Med Rec #, Unit # (Meditech), Chart #, Hosp #, Patient ID, EMPI; Acct #, FIN, HAR, CSN (Epic),
Visit #, Encounter #; DOB, D.O.B., Birthdate; DOS, Date of Service, Adm/Disch, Visit Date; sex and age.
OCR damage that labels suffer (a misread letter, a stray mark before the colon) is tolerated where it
cannot make a different key.
"""

from __future__ import annotations

import re

from chartvault.classify.dates import DATE_TOKEN

# Labels. Each is matched case-insensitively, must not be glued to a preceding letter or digit, and is
# followed by optional separators (OCR turns ':' into ';' or '.', adds spaces before it).
# OCR drops the spaces of a small-print key ('DATEOFBIRTH'), so 'of' keys take them optionally.
# OCR adds stray characters around separators ("MR#t:", "DOB-", "ENC;"): tolerate one letter before a colon.
# It reads a key's '.' as ',' ('Med Rec No,').
_SEP = r"[ \t]*(?:[A-Za-z](?=[:;]))?[ \t]*[:;.,#=\-]*[ \t]*"
_B = r"(?<![A-Za-z0-9])"

_MRN_LABEL = (
    r"(?:M[ ]?R[ ]?N(?:[ ]?(?:#|No\b\.?))?|MR[ ]*(?:#|No\b\.?|Number)|"
    r"M[ae]d(?:ical)?\.?[ ]*Re[ce](?:ord)?s?\.?[ ]*(?:#|No\b\.?|Number|Num\b)?|"  # fax: 'Mad Ree #'
    r"Unit[ ]*(?:#|No\b\.?|Number)|Chart[ ]*(?:#|No\b\.?|Number)|"
    r"Hosp(?:ital)?\.?[ ]*(?:#|No\b\.?|Number)|(?:Patient|Pt\.?)[ ]*ID|EMPI)"
)
_ACCT_LABEL = (
    r"(?:ACCT\b\.?[ ]*(?:#|No\b\.?|Number)?|Account[ ]*(?:#|No\b\.?|Number)?|"
    r"(?-i:FIN|Fin)\b[ ]*(?:#|No\b\.?)?|(?-i:HAR)\b[ ]*#?|Billing[ ]*(?:#|No\b\.?|Number))"
)
_ENC_LABEL = (
    r"(?:ENC\b\.?[ ]*(?:#|No\b\.?)?|Encounter[ ]*(?:#|No\b\.?|Number|ID)?|Visit[ ]*(?:#|No\b\.?|Number|ID)|"
    r"(?-i:CSN)\b[ ]*#?)"
)
_DOB_LABEL = (
    r"(?:(?:D\.?[ ]?[O0o]\.?[ ]?[B8](?![A-Za-z])\.?|Birth[ ]*-?[ ]*[DB]ate|Date[ ]*of[ ]*Birth|"
    r"(?-i:[DR][O0]R)(?=[ ]*:))"  # fax: 'DOR:', 'ROR:' (capitals and a colon: no word of prose)
    r"(?:[ ]?/[ ]?Age(?![A-Za-z]))?)"  # 'DOB/Age: 03/04/1952 / 72Y': the date comes first
)
_DOS_LABEL = (
    r"(?:D\.?[ ]?[O0o]\.?[ ]?S(?![A-Za-z])\.?|Date[ ]*of[ ]*(?:Serv[il1][ce][ce]|Visit)|"  # fax: 'Serviee'
    r"(?:Service|Sv[ce]|Visit|Encounter)\.?[ ]+Da(?:t[ea]|le))"  # fax: 'Visit Dale', 'Visit Data', 'Sve Date'
)
_ADM_LABEL = (
    r"(?:Adm(?:i[tl](?:ted)?|ission|\.)?(?:[ ]*(?:Date|Dt))?(?:[ ]*/[ ]*Dis[a-z]{0,6}\.?(?:[ ]*Date)?)?|"
    r"Date[ ]*of[ ]*Admission)"
)
_NAME_LABEL = r"(?:Patient[ ]*Name|Pt\.?[ ]*Nam[eo]|Name[ ]+of[ ]+Patient|PATIENT|NAME)"
_AGE_LABEL = r"(?:AGE)"

_ID_TOKEN = r"[A-Za-z0-9|!£€][A-Za-z0-9|!\-]{2,24}"

MRN_RE = re.compile(_B + "(" + _MRN_LABEL + ")" + _SEP + "(" + _ID_TOKEN + ")", re.I)
ACCT_RE = re.compile(_B + "(" + _ACCT_LABEL + ")" + _SEP + "(" + _ID_TOKEN + ")", re.I)
ENC_RE = re.compile(_B + "(" + _ENC_LABEL + ")" + _SEP + "(" + _ID_TOKEN + ")", re.I)
DOB_RE = re.compile(_B + "(" + _DOB_LABEL + ")" + _SEP + "(" + DATE_TOKEN + ")", re.I)
DOS_RE = re.compile(_B + "(" + _DOS_LABEL + ")" + _SEP + "(" + DATE_TOKEN + ")", re.I)
ADM_RE = re.compile(_B + "(" + _ADM_LABEL + ")" + _SEP + "(" + DATE_TOKEN + ")", re.I)
# Misread labels ('MBN:', 'MRWN:', 'AGCT:', 'EN€:'): used only when no well-read label is on the page, need a
# colon, and give lower confidence.
_FUZZY_SEP = r"[ \t]*[:;][ \t]*"
MRN_FUZZY_RE = re.compile(_B + r"(M[RBAKHW]{1,2}N|M[RBAKHW]?#)" + _FUZZY_SEP + "(" + _ID_TOKEN + ")")
ACCT_FUZZY_RE = re.compile(_B + r"(A[CG]{1,2}[CGT]T?|F[I1l]N)" + _FUZZY_SEP + "(" + _ID_TOKEN + ")")
ENC_FUZZY_RE = re.compile(_B + r"(EN\S{0,3}?|V[I1l]S[I1l]T\S?)" + _FUZZY_SEP + "(" + _ID_TOKEN + ")")
AGE_RE = re.compile(  # not after '/': in 'DOB/Age: 03/04/1952 / 72Y' the first value is the date
    r"(?<![A-Za-z0-9/])"
    + _AGE_LABEL
    + r"[ \t]*[:;.]?[ \t]*(\d{1,3})[ ]*(?:Y|YR|YRS|YO|years?)?(?![0-9A-Za-z])",
    re.I,
)
NAME_RE = re.compile(
    r"(?:^|(?<=[ \t]{2})|(?<=\t)|(?<=\|))[ \t]*(" + _NAME_LABEL + r")[ \t]*[:;][ \t]*(.+)", re.I
)
RE_NAME_RE = re.compile(r"^[ \t]*RE[ \t]*:[ \t]*(.+)", re.I)

# Words that end a name value when OCR collapsed the gap before the next label; a wide gap ends it too,
# unless it follows the comma of 'LAST,  FIRST' (a gap that wide there is a misjudged space).
NAME_STOP = re.compile(
    r"(?:(?<![,\s])[ \t]{2,}|\t|\||(?<=[ \t])(?=(?:MRN\b|MR[ ]?#|MR\b|DOB\b|D\.O\.B|SEX\b|AGE\b|ACCT\b|"
    r"FIN\b|ENC\b|"
    r"DOS\b|ROOM\b|RM\b|ATTENDING\b|PHYSICIAN\b|ADMIT\b|ACCOUNT\b|UNIT\b|VISIT\b|BIRTH\b|DATE\b|"
    r"MED\b|CHART\b|PATIENT\b|PT\b|GENDER\b|HAR\b|CSN\b|EMPI\b|ENCOUNTER\b|\(continued\))))",
    re.I,
)
_SEX_LABEL = r"(?:SEX|GENDER)"
SEX_RE = re.compile(_B + _SEX_LABEL + r"[ \t]*[:;.]?[ \t]*(MALE|FEMALE|M|F)(?![A-Za-z])", re.I)
# A key that may stand above its value in a form grid rather than before it.
ANY_KEY_RE = re.compile(
    _B
    + "("
    + "|".join(
        (_NAME_LABEL.replace("|PATIENT|NAME)", "|PATIENT|NAME(?![A-Za-z]))"), _MRN_LABEL, _ACCT_LABEL,
         _ENC_LABEL, _DOB_LABEL, _DOS_LABEL, _ADM_LABEL, r"AGE[ ]?/[ ]?SEX|SEX[ ]?/[ ]?AGE|SEX|GENDER|AGE")
    )
    + r")(?![A-Za-z])",
    re.I,
)  # fmt: skip
