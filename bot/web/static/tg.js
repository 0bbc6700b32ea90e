// Mini App sign-in: hand Telegram's signed initData to the server, which validates it (never trusts the id).
(function () {
  var app = window.Telegram && window.Telegram.WebApp;
  if (!app || !app.initData) { return; }
  app.ready();
  document.getElementById("init-data").value = app.initData;
  document.getElementById("tg-form").submit();
})();
