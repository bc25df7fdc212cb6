// The call page's entry: the doctor's /c/{id} and the patient's or nurse's /j/{token} (modules in ./call/).
import { CallPage } from "./call/page.js";

new CallPage(document.getElementById("call-root")).start();
