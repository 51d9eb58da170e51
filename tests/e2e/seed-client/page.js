// Copied unchanged from the seed notes (../shared/seed/000_8d92d5a7aa89435e.txt): the
// mini-program client the worker must serve as is. Run by ../wx.mjs.
// pages/test3/test3.js
const app = getApp()
Page({
/**
* 页面的初始数据
*/
data: {
},
//加密解密
user1:function(e){
// console.log("e",e.detail)
wx.getSetting({
success(res) {
if (res.authSetting['scope.userInfo']) {
wx.checkSession({
success() {
//session_key 未过期,并且在本生命周期一直有效
wx.getUserInfo({
success: (res) => {
console.log("res", res)//这个res里面就是用户的信息
//将数据发送到后端
wx.request({
//这里是发送iv和encryptedate
url: app.globalData.baseurl + "getinfo/",
data:{
iv:res.iv,
encryptedData:res.encryptedData,
token: wx.getStorageSync('token')
},
method:"POST",
success: (e) => {
console.log("后台返回的数据",e)
}
})
},
})
},
fail() {
// session_key 已经失效,需要重新执行登录流程
app.my_login()
wx.request({
//这里是发送iv和encryptedate
url: app.globalData.baseurl + "getinfo/",
data: {
iv: res.iv,
encryptedData: res.encryptedData,
token: wx.getStorageSync('token')
},
method: "POST",
success: (e) => {
console.log("后台返回的数据", e)
}
})
}
})
}
}
})
},
//支付
pay:function(){
wx.request({
url: app.globalData.baseurl + "pay/",
data:{"money":1, token:wx.getStorageSync('token')},
method:"POST",
success(e){
console.log("支付数据",e)
wx.requestPayment(
{
'timeStamp': e.data.data.timeStamp,
'nonceStr': e.data.data.nonceStr,
'package': e.data.data.package,
'signType': e.data.data.signType,
'paySign': e.data.data.paySign,
'success': function (res) {
console.log("成功", res)
},
'fail': function (res) {
console.log("失败", res)
},
})
}
})
}
})
