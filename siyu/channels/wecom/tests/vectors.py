"""Official sample vectors of WeCom callback crypto. Never invented: each is copied from
Tencent's documentation or its official sample code, as cited.

DOC — the WeCom documentation page 「加解密方案说明」 (work.weixin.qq.com/api/doc/90000/90139/90968),
worked example: corpId ``wx5823bf96d3bd56c7``, token ``QDG6eK``, EncodingAESKey
``jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C``; the POST
(msg_signature=477715d1…, timestamp=1409659813, nonce=1372623149, Encrypt=RypEvHKD…)
and the plaintext it decrypts to. The GET example for the same configuration
(msg_signature=5c45ff5e…, timestamp=1409659589, nonce=263014780, echostr=P9nAzCzy…) is the
URL-verification request of the official WXBizMsgCrypt samples ("使用示例一：验证回调URL";
the PHP sample sets exactly this corpId/token/EncodingAESKey beside it, and the Python
Sample.py quotes the same request in its comment).

SAMPLE — Tencent's official Python sample ``weworkapi_python/callback/Sample.py``
(github.com/sbzhu/weworkapi_python, linked from the WeCom docs): token
``hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo``, EncodingAESKey
``6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt``, corp id ``ww1436e0e65a779aee``; its VerifyURL
(012bc692…, 1476416373, 47744683, fsi1xnbH…) and DecryptMsg (0c391402…, 1476422779,
1597212914, Kl7kjoSf…) examples.

The samples do not print the echostr plaintexts; ``1616140317555161061`` and
``1288432023552776189`` are what those documented requests decrypt to (length field and
ReceiveId check out), and are asserted as such.
"""

DOC_CORP_ID = "wx5823bf96d3bd56c7"
DOC_TOKEN = "QDG6eK"
DOC_AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"

DOC_VERIFY = {
    "msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
    "timestamp": "1409659589",
    "nonce": "263014780",
    "echostr": "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==",
}
DOC_VERIFY_PLAIN = "1616140317555161061"

DOC_POST_SIGNATURE = "477715d11cdb4164915debcba66cb864d751f3e6"
DOC_POST_TIMESTAMP = "1409659813"
DOC_POST_NONCE = "1372623149"
DOC_POST_ENCRYPT = "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="
DOC_POST_BODY = (
    "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>"
    f"<Encrypt><![CDATA[{DOC_POST_ENCRYPT}]]></Encrypt>"
    "<AgentID><![CDATA[218]]></AgentID></xml>"
)
DOC_POST_PLAIN = (
    "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n"
    "<FromUserName><![CDATA[mycreate]]></FromUserName>\n"
    "<CreateTime>1409659813</CreateTime>\n"
    "<MsgType><![CDATA[text]]></MsgType>\n"
    "<Content><![CDATA[hello]]></Content>\n"
    "<MsgId>4561255354251345929</MsgId>\n"
    "<AgentID>218</AgentID>\n"
    "</xml>"
)

SAMPLE_CORP_ID = "ww1436e0e65a779aee"
SAMPLE_TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
SAMPLE_AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
SAMPLE_VERIFY = {
    "msg_signature": "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb",
    "timestamp": "1476416373",
    "nonce": "47744683",
    "echostr": "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==",
}
SAMPLE_VERIFY_PLAIN = "1288432023552776189"
SAMPLE_POST_SIGNATURE = "0c3914025cb4b4d68103f6bfc8db550f79dcf48e"
SAMPLE_POST_TIMESTAMP = "1476422779"
SAMPLE_POST_NONCE = "1597212914"
SAMPLE_POST_ENCRYPT = "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+"
SAMPLE_POST_PLAIN = (
    "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName>"
    "<CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content>"
    "<MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>"
)
