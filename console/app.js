document.getElementById("app").textContent = "pqota";
